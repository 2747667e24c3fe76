"""Privacy in language-model services, measured: memorised canaries, DP-SGD, federated text,
encrypted inference. Writes ``benchmarks/results/language_models.json``.

Usage: LABKIT_FULL=1 uv run python benchmarks/language_models.py [--only dp,canary]
(under 45 min on 2 cores). Without LABKIT_FULL it runs a small version and writes
language_models_quick.json (not tracked). ``--only`` re-runs the named parts and keeps the other
parts' rows from the mode's results file; ``meta["parts"]`` records each part's own date, load
and seconds, so a merged file says which run every row came from.

Every row is {"experiment", "part", selector fields (``insertions``, ``epoch``, ``seed``,
``noise_multiplier``, ``method``, ``partition``, ``round``, ``key_bits``, ...), "epsilon",
"exposure", "perplexity" or "accuracy", "seconds"}: select with
``lk.results.load_rows("language_models", experiment=..., insertions=64)``. epsilon is null for
a non-private run; exposure is in bits. Experiments:

* exposure_vs_epochs: one char GRU trained without DP on Shakespeare with four canaries planted
  1, 4, 16, 64 times; exact exposure of each after every epoch, held-out perplexity.
* dp_exposure: the same data and model trained with DP-SGD at two epsilons (per chunk of text,
  delta 1e-5), once per seed in ``SEEDS`` (model initialisation, batches and noise), beside the
  non-private model's last epoch.
* dpsgd_cost: seconds per step of batch 256 for non-private SGD, labkit's ghost-recurrent DP-SGD
  and the generic vectorised path (per-example gradients with tf.vectorized_map, RNN unrolled).
* federated / federated_summary: next-character prediction, one client per speaking role vs the
  same windows IID, and DP-FedAvg by role (user-level epsilon): accuracy per round, rounds to a
  target accuracy.
* private_inference: a linear genre classifier served on Paillier-encrypted features vs
  plaintext: seconds per query (client encrypt + service + client decrypt); bytes in meta.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time

import numpy as np
from _common import results_path, write_results

import labkit as lk
from labkit.experiments import text as et

FULL = lk.is_full()
COUNTS = [1, 4, 16, 64]
SEEDS = lk.scale([0], [0, 1, 2])  # DP exposure: one training run per seed and epsilon
PARTS = ("canary", "cost", "dp", "fl", "inference")
LM = dict(  # the canary experiments
    plays=lk.scale(["macbeth"], ["julius_caesar", "macbeth"]),
    seq_len=lk.scale(32, 48),
    units=lk.scale(48, 256),
    secret_length=lk.scale(4, 5),
    epochs=lk.scale(2, 8),
    dp_epochs=lk.scale(1, 4),
    dp_epsilons=lk.scale([8.0], [1.0, 8.0]),
    dp_batch=256,
)
FL = dict(
    plays=lk.scale(["macbeth"], None),  # None: all 37 plays
    num_rounds=lk.scale(3, 20),
    units=lk.scale(32, 64),
    clients_per_round=lk.scale(3, 10),
    dp_clients_per_round=lk.scale(3, 20),
    target=lk.scale(0.2, 0.3),
)
DELTA = 1e-5


def row(experiment, epsilon=None, exposure=None, seconds=None, *, metric, **fields):
    """One result row: the experiment, its selector fields, then the measured values."""
    ((key, value),) = metric.items()  # perplexity or accuracy
    eps = None if epsilon is None or not np.isfinite(epsilon) else float(epsilon)
    return {
        "experiment": experiment,
        **fields,
        "epsilon": eps,
        "exposure": None if exposure is None else float(exposure),
        key: None if value is None else float(value),
        "seconds": None if seconds is None else float(seconds),
    }


def canary_rows(data, seed: int = 0) -> list[dict]:
    rows = []
    log = et.canary_experiment(data, LM["units"], LM["epochs"], batch_size=64, seed=seed)
    for i, e in enumerate(log["epochs"]):
        for k, x in zip(COUNTS, log["exposure"][i], strict=True):
            rows.append(
                row(
                    "exposure_vs_epochs",
                    None,
                    x,
                    log["seconds"][e - 1],
                    metric={"perplexity": log["perplexity"][i]},
                    insertions=k,
                    epoch=e,
                    seed=seed,
                )
            )
    secrets = dict(zip(COUNTS, data["secrets"], strict=True))
    for k, sp, done in zip(COUNTS, data["spaces"], log["completions"], strict=True):
        rows.append(
            row(
                "completion",
                metric={"perplexity": None},
                insertions=k,
                prefix=sp.prefix,
                secret=secrets[k],
                completed=done,
                seed=seed,
            )
        )
    for k, x in zip(COUNTS, log["exposure"][-1], strict=True):
        rows.append(
            row(
                "dp_exposure",
                None,
                x,
                log["seconds"][-1],
                metric={"perplexity": log["perplexity"][-1]},
                insertions=k,
                noise_multiplier=0.0,
                epoch=log["epochs"][-1],
                seed=seed,
            )
        )
    print(f"non-private seed {seed}: exposure {log['exposure'][-1]}")
    return rows


def dp_rows(data) -> list[dict]:
    rows = []
    n = len(data["x"])
    runs = [(t, s) for t in LM["dp_epsilons"] for s in SEEDS]
    for target, seed in lk.config.progress(runs, desc="DP runs"):
        sigma = lk.dp.dpsgd_noise_multiplier(target, LM["dp_batch"], n, LM["dp_epochs"], DELTA)
        log = et.canary_experiment(
            data,
            LM["units"],
            LM["dp_epochs"],
            batch_size=LM["dp_batch"],
            noise_multiplier=sigma,
            delta=DELTA,
            seed=seed,
        )
        for i, e in enumerate(log["epochs"]):
            for k, x in zip(COUNTS, log["exposure"][i], strict=True):
                rows.append(
                    row(
                        "dp_exposure",
                        log["epsilon"][i],
                        x,
                        log["seconds"][e - 1],
                        metric={"perplexity": log["perplexity"][i]},
                        insertions=k,
                        noise_multiplier=round(float(sigma), 6),
                        target_epsilon=target,
                        epoch=e,
                        seed=seed,
                    )
                )
        print(f"DP eps={log['epsilon'][-1]:.2f} seed {seed}: exposure {log['exposure'][-1]}")
    return rows


def cost_rows(data) -> list[dict]:
    import tensorflow as tf

    from labkit.dp.recurrent import RecurrentDPSGD

    b, steps = LM["dp_batch"], lk.scale(3, 4)
    x, y = data["x"][: b * steps], data["y"][: b * steps]
    batches = [(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(steps)]
    rows = []

    def timed(step, reps=steps) -> float:
        step(*batches[0])  # trace / compile
        start = time.perf_counter()
        for xb, yb in batches[:reps]:
            step(xb, yb)
        return (time.perf_counter() - start) / reps

    model = lk.models.build_char_lm(LM["seq_len"], units=LM["units"], seed=0)
    opt = tf.keras.optimizers.SGD(0.1)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def plain(xb, yb):
        with tf.GradientTape() as tape:
            value = loss(yb, model(xb, training=True))
        grads = tape.gradient(value, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    rows.append(
        row(
            "dpsgd_cost",
            seconds=timed(plain),
            metric={"perplexity": None},
            method="non-private",
            batch=b,
        )
    )
    dp = RecurrentDPSGD(model, 1.0, 1.0, 0.1)
    rows.append(
        row(
            "dpsgd_cost",
            seconds=timed(lambda xb, yb: dp.step(xb, yb, float(b), b)),
            metric={"perplexity": None},
            method="ghost-recurrent",
            batch=b,
        )
    )
    unrolled = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(LM["seq_len"],)),
            tf.keras.layers.Embedding(len(lk.data.text.VOCAB), 16),
            tf.keras.layers.GRU(LM["units"], return_sequences=True, unroll=True),
            tf.keras.layers.Dense(len(lk.data.text.VOCAB)),
        ]
    )
    vec = lk.dp.DPSGD(unrolled, 1.0, 1.0, 0.1, method="vectorized")
    rows.append(
        row(
            "dpsgd_cost",
            # one timed step: at ~70x a plain step, more would cost minutes and say nothing new
            seconds=timed(lambda xb, yb: vec.step(xb, yb, float(b), b), reps=1),
            metric={"perplexity": None},
            method="vectorized",
            batch=b,
        )
    )
    return rows


def fl_rows() -> list[dict]:
    rows = []
    runs = [("role", None), ("iid", None), ("role", "dp")]
    for partition, dp in runs:
        m = FL["dp_clients_per_round"] if dp else FL["clients_per_round"]
        num = len(lk.data.text.load_roles(FL["plays"], min_chars=400))
        agg = lk.dp.DPFedAvgAggregator(0.5, 1.0, m, seed=0) if dp else None
        res = et.federated_text(
            FL["plays"],
            partition,
            FL["num_rounds"],
            units=FL["units"],
            stride=8,
            client_fraction=m / num,
            aggregator=agg,
            seed=0,
        )
        h = res["history"]
        sel = {"partition": partition, "dp": "DP-FedAvg" if dp else None}
        for r, acc, s in zip(h.rounds, h.test_accuracy, h.wall_time, strict=True):
            rows.append(
                row(
                    "federated",
                    res["epsilon"],
                    seconds=s,
                    metric={"accuracy": acc},
                    **sel,
                    round=r,
                )
            )
        reached = h.rounds_to(FL["target"])
        rows.append(
            row(
                "federated_summary",
                res["epsilon"],
                seconds=h.wall_time[-1],
                metric={"accuracy": h.final_accuracy},
                **sel,
                clients=res["num_clients"],
                per_round=m,
                target=FL["target"],
                rounds_to_target=reached,
                rounds=h.rounds[-1],
            )
        )
        print(f"FL {sel}: final accuracy {h.final_accuracy:.3f}, rounds to target {reached}")
    return rows


def inference_rows(meta: dict) -> list[dict]:
    import warnings

    from labkit.he.inference import private_query

    service, x_te, y_te, acc = et.genre_service(
        lk.scale(["macbeth", "tempest", "richard_ii"], None)
    )
    rows = []
    queries = x_te[: lk.scale(2, 10)]
    start = time.perf_counter()
    for q in queries:
        service.plaintext_scores(q)
    plain = (time.perf_counter() - start) / len(queries)
    rows.append(
        row(
            "private_inference",
            None,
            None,
            plain,
            metric={"accuracy": acc},
            scheme="plaintext",
            key_bits=None,
            d=service.num_features,
            k=3,
        )
    )
    for bits in lk.scale([1024], [2048, 3072]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lk.he.InsecureKeyWarning)
            pk, sk = lk.he.cached_keypair(bits, allow_insecure=bits < 2048)
        enc = lk.he.FastEncryptor(pk)
        results = [private_query(service, q, pk, sk, encryptor=enc) for q in queries]
        assert all(r["within_bound"] for r in results)
        agree = np.mean(
            [np.argmax(r["scores"]) == np.argmax(r["plaintext_scores"]) for r in results]
        )
        seconds = float(np.median([r["seconds_total"] for r in results]))
        rows.append(
            row(
                "private_inference",
                None,
                None,
                seconds,
                metric={"accuracy": acc},
                scheme="paillier",
                key_bits=bits,
                d=service.num_features,
                k=3,
                agree=float(agree),
            )
        )
        r = results[0]
        meta.setdefault("private_inference", {})[str(bits)] = {
            k: r[k]
            for k in ("bytes_up", "bytes_down", "plaintext_bytes_up", "plaintext_bytes_down")
        } | {
            k: float(np.median([x[k] for x in results]))
            for k in ("seconds_encrypt", "seconds_service", "seconds_decrypt")
        }
    return rows


def previous_run(parts: tuple[str, ...]) -> tuple[list[dict], dict]:
    """The rows and per-part meta of the parts *not* re-run, from the mode's results file."""
    path = results_path("language_models")
    if set(parts) == set(PARTS) or not path.is_file():
        return [], {}
    old = json.loads(path.read_text())
    keep = [r for r in old["rows"] if r.get("part") not in parts]
    return keep, {k: v for k, v in old["meta"].get("parts", {}).items() if k not in parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    only = tuple(p for p in parser.parse_args().only.split(",") if p)
    if not set(only) <= set(PARTS):
        raise SystemExit(f"--only: parts are {PARTS}, got {only}")
    os.environ.setdefault("LABKIT_PROGRESS", "0")
    lk.config.quiet_tensorflow()
    lk.set_seed(0)
    start = time.perf_counter()
    rows, parts_meta = previous_run(only)
    meta = {
        "lm": {k: v for k, v in LM.items()} | {"seeds": SEEDS},
        "fl": {k: v for k, v in FL.items()},
        "delta": DELTA,
    }
    data = et.canary_corpus(LM["plays"], COUNTS, LM["seq_len"], LM["secret_length"], seed=0)
    meta["lm"] |= {
        "num_chunks": len(data["x"]),
        "num_chars": data["num_chars"],
        "candidate_space": data["spaces"][0].size,
        "params": int(lk.models.build_char_lm(LM["seq_len"], units=LM["units"]).count_params()),
    }
    for part in PARTS:
        if part not in only:
            continue
        t, load = time.perf_counter(), os.getloadavg()[0]
        if part == "canary":
            new = canary_rows(data)
        elif part == "cost":
            new = cost_rows(data)
        elif part == "dp":
            new = dp_rows(data)
        elif part == "fl":
            new = fl_rows()
        else:
            new = inference_rows(meta)
        rows += [{"part": part} | r for r in new]
        parts_meta[part] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": time.perf_counter() - t,
            "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        }
        print(f"{part}: {time.perf_counter() - t:.0f} s")
    meta["parts"] = dict(sorted(parts_meta.items()))
    meta["seconds"] = time.perf_counter() - start
    out = write_results("language_models", rows, meta)
    print(f"wrote {out} ({len(rows)} rows, {meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
