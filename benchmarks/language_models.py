"""Privacy in language-model services, measured: memorised canaries, DP-SGD, federated text,
encrypted inference. Writes ``benchmarks/results/language_models.json``.

Usage: LABKIT_FULL=1 uv run python benchmarks/language_models.py   (under 45 min on 2 cores)
Without LABKIT_FULL it runs a small version and writes language_models_quick.json (not tracked).

Every row is {"experiment", "setting", "epsilon", "exposure", "perplexity" or "accuracy",
"seconds"}; ``setting`` is "key=value ..." (read it with ``parse_setting``). epsilon is null
for a non-private run; exposure is in bits. Experiments:

* exposure_vs_epochs: one char GRU trained without DP on Shakespeare with four canaries planted
  1, 4, 16, 64 times; exact exposure of each after every epoch, held-out perplexity.
* dp_exposure: the same data and model trained with DP-SGD at two epsilons (per chunk of text,
  delta 1e-5), beside the non-private model's last epoch.
* dpsgd_cost: seconds per step of batch 256 for non-private SGD, labkit's ghost-recurrent DP-SGD
  and the generic vectorised path (per-example gradients with tf.vectorized_map, RNN unrolled).
* federated / federated_summary: next-character prediction, one client per speaking role vs the
  same windows IID, and DP-FedAvg by role (user-level epsilon): accuracy per round, rounds to a
  target accuracy.
* private_inference: a linear genre classifier served on Paillier-encrypted features vs
  plaintext: seconds per query (client encrypt + service + client decrypt); bytes in meta.
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import write_results

import labkit as lk
from labkit.experiments import text as et

FULL = lk.is_full()
COUNTS = [1, 4, 16, 64]
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


def row(experiment, setting, epsilon=None, exposure=None, seconds=None, **metric):
    ((key, value),) = metric.items()  # perplexity or accuracy
    eps = None if epsilon is None or not np.isfinite(epsilon) else float(epsilon)
    return {
        "experiment": experiment,
        "setting": setting,
        "epsilon": eps,
        "exposure": None if exposure is None else float(exposure),
        key: None if value is None else float(value),
        "seconds": None if seconds is None else float(seconds),
    }


def canary_rows(data) -> list[dict]:
    rows = []
    log = et.canary_experiment(data, LM["units"], LM["epochs"], batch_size=64)
    for i, e in enumerate(log["epochs"]):
        for k, x in zip(COUNTS, log["exposure"][i], strict=True):
            rows.append(
                row(
                    "exposure_vs_epochs",
                    f"insertions={k} epoch={e}",
                    None,
                    x,
                    log["seconds"][e - 1],
                    perplexity=log["perplexity"][i],
                )
            )
    secrets = dict(zip(COUNTS, data["secrets"], strict=True))
    for k, sp, done in zip(COUNTS, data["spaces"], log["completions"], strict=True):
        rows.append(
            row(
                "completion",
                f"insertions={k} prefix={sp.prefix!r} secret={secrets[k]} completed={done}",
                None,
                None,
                None,
                perplexity=None,
            )
        )
    for k, x in zip(COUNTS, log["exposure"][-1], strict=True):
        last = log["epochs"][-1]
        rows.append(
            row(
                "dp_exposure",
                f"insertions={k} noise_multiplier=0 epoch={last}",
                None,
                x,
                log["seconds"][-1],
                perplexity=log["perplexity"][-1],
            )
        )
    print(f"non-private: {log['params']} parameters, exposure {log['exposure'][-1]}")
    return rows, log["params"]


def dp_rows(data) -> list[dict]:
    rows = []
    n = len(data["x"])
    for target in LM["dp_epsilons"]:
        sigma = lk.dp.dpsgd_noise_multiplier(target, LM["dp_batch"], n, LM["dp_epochs"], DELTA)
        log = et.canary_experiment(
            data,
            LM["units"],
            LM["dp_epochs"],
            batch_size=LM["dp_batch"],
            noise_multiplier=sigma,
            delta=DELTA,
        )
        for i, e in enumerate(log["epochs"]):
            for k, x in zip(COUNTS, log["exposure"][i], strict=True):
                rows.append(
                    row(
                        "dp_exposure",
                        f"insertions={k} noise_multiplier={sigma:.3f} epoch={e}",
                        log["epsilon"][i],
                        x,
                        log["seconds"][e - 1],
                        perplexity=log["perplexity"][i],
                    )
                )
        print(f"DP eps={log['epsilon'][-1]:.2f}: exposure {log['exposure'][-1]}")
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
        row("dpsgd_cost", f"method=non-private batch={b}", seconds=timed(plain), perplexity=None)
    )
    dp = RecurrentDPSGD(model, 1.0, 1.0, 0.1)
    rows.append(
        row(
            "dpsgd_cost",
            f"method=ghost-recurrent batch={b}",
            seconds=timed(lambda xb, yb: dp.step(xb, yb, float(b), b)),
            perplexity=None,
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
            f"method=vectorized batch={b}",
            # one timed step: at ~70x a plain step, more would cost minutes and say nothing new
            seconds=timed(lambda xb, yb: vec.step(xb, yb, float(b), b), reps=1),
            perplexity=None,
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
        name = f"partition={partition}" + (" dp=DP-FedAvg" if dp else "")
        for r, acc, s in zip(h.rounds, h.test_accuracy, h.wall_time, strict=True):
            rows.append(
                row("federated", f"{name} round={r}", res["epsilon"], seconds=s, accuracy=acc)
            )
        reached = h.rounds_to(FL["target"])
        rows.append(
            row(
                "federated_summary",
                f"{name} clients={res['num_clients']} "
                f"per_round={m} target={FL['target']} rounds_to_target={reached} "
                f"rounds={h.rounds[-1]}",
                res["epsilon"],
                seconds=h.wall_time[-1],
                accuracy=h.final_accuracy,
            )
        )
        print(f"FL {name}: final accuracy {h.final_accuracy:.3f}, rounds to target {reached}")
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
            f"plaintext d={service.num_features} k=3",
            None,
            None,
            plain,
            accuracy=acc,
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
                f"paillier key_bits={bits} d={service.num_features} k=3 agree={agree:.3f}",
                None,
                None,
                seconds,
                accuracy=acc,
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


def main() -> None:
    os.environ.setdefault("LABKIT_PROGRESS", "0")
    lk.config.quiet_tensorflow()
    lk.set_seed(0)
    start = time.perf_counter()
    meta = {
        "load_average_start": list(os.getloadavg()),
        "lm": {k: v for k, v in LM.items()},
        "fl": {k: v for k, v in FL.items()},
        "delta": DELTA,
    }
    data = et.canary_corpus(LM["plays"], COUNTS, LM["seq_len"], LM["secret_length"], seed=0)
    meta["lm"] |= {
        "num_chunks": len(data["x"]),
        "num_chars": data["num_chars"],
        "candidate_space": data["spaces"][0].size,
    }
    rows = []
    for part in ("canary", "cost", "dp", "fl", "inference"):
        t = time.perf_counter()
        if part == "canary":
            new, meta["lm"]["params"] = canary_rows(data)
        elif part == "cost":
            new = cost_rows(data)
        elif part == "dp":
            new = dp_rows(data)
        elif part == "fl":
            new = fl_rows()
        else:
            new = inference_rows(meta)
        rows += new
        meta.setdefault("part_seconds", {})[part] = time.perf_counter() - t
        print(f"{part}: {time.perf_counter() - t:.0f} s")
    meta["seconds"] = time.perf_counter() - start
    meta["load_average_end"] = list(os.getloadavg())
    out = write_results("language_models", rows, meta)
    print(f"wrote {out} ({len(rows)} rows, {meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
