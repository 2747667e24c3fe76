"""A private model service end to end, measured. Writes ``benchmarks/results/model_service.json``.

Usage: LABKIT_FULL=1 uv run python benchmarks/model_service.py   (about 10 min on 2 quiet cores;
under 45 min on a shared machine). Without LABKIT_FULL it runs a small version and writes
model_service_quick.json (not tracked).

Rows carry ``table``:

* ``fine_tune``: {mode, target_epsilon, epsilon, seed, perplexity, exposure (list, one per canary,
  bits), max_exposure, seconds}. ``mode`` is pretrained (no fine-tuning), nonprivate, full, head
  or scratch; epsilon per chunk of private text at ``meta.delta``, null without DP.
* ``extraction``: {mode, target_epsilon, seed, reference, top_k, num_candidates, secrets_top,
  rare_lines_top, secrets_anywhere, rare_lines_anywhere}: how many planted secrets (the digits)
  and rare private lines occur verbatim in the top_k ranked generated lines (or in any): the
  Carlini et al. (2021) attack against the fine-tuned models.
* ``query_log``: {method (central/local), epsilon, seed, recall, released}: recall of the query
  log's true top-k phrases; one user per line of the non-public plays, the local-DP server's
  candidates are the phrases of the public plays (it cannot enumerate an unknown domain).
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import write_results

import labkit as lk
from labkit.attacks import extraction as xt
from labkit.data import corpora
from labkit.experiments import service as sv

FULL = lk.is_full()
CFG = dict(
    public_plays=lk.scale(["as_you_like_it"], list(corpora.PUBLIC_PLAYS[:2])),
    private_plays=lk.scale(["macbeth"], ["macbeth", "othello"]),
    max_public_chars=lk.scale(40_000, 150_000),
    max_private_chars=lk.scale(30_000, 90_000),
    seq_len=48,
    units=lk.scale(48, 64),
    canary_counts=[1, 4, 16, 64],
    secret_length=lk.scale(4, 5),
    pretrain_epochs=lk.scale(1, 3),
    epochs=lk.scale(1, 2),
    nonprivate_epochs=lk.scale(1, 2),
    epsilons=[1.0, 3.0, 8.0],
    seeds=lk.scale([0], [0, 1]),
    batch_size=256,
    dp_learning_rate=1.0,
    l2_norm_clip=1.0,
    samples=lk.scale(100, 400),
    sample_length=120,
    top_k=lk.scale(20, 100),
    query_k=10,
    max_partitions=1,
    query_seeds=lk.scale([0], [0, 1]),
    query_epsilons=lk.scale([1.0, 8.0], [0.5, 1.0, 2.0, 4.0, 8.0]),
)
DELTA = 1e-5


def attack_rows(model, data, mode, target, seed, pretrained) -> list[dict]:
    rows = []
    targets = {"secrets": data["secrets"], "rare_lines": data["rare_lines"]}
    for name, ref in (("zlib", "zlib"), ("pretrained", pretrained)):
        a = xt.extraction_attack(model, targets, CFG["samples"], CFG["sample_length"],
                                 CFG["top_k"], reference=ref, seed=seed)  # fmt: skip
        rows.append({"table": "extraction", "mode": mode, "target_epsilon": target,
                     "seed": seed, "reference": name, "top_k": CFG["top_k"],
                     "num_candidates": a["num_candidates"],
                     "secrets_top": len(a["found"]["secrets"]),
                     "rare_lines_top": len(a["found"]["rare_lines"]),
                     "secrets_anywhere": len(a["found_anywhere"]["secrets"]),
                     "rare_lines_anywhere": len(a["found_anywhere"]["rare_lines"])})  # fmt: skip
    return rows


def fine_tune_row(mode, target, seed, m, seconds) -> dict:
    eps = m.get("epsilon", float("inf"))
    return {"table": "fine_tune", "mode": mode, "target_epsilon": target,
            "epsilon": None if not np.isfinite(eps) else float(eps), "seed": seed,
            "perplexity": float(m["perplexity"]), "exposure": [float(e) for e in m["exposure"]],
            "max_exposure": float(max(m["exposure"])), "seconds": float(seconds)}  # fmt: skip


def main() -> None:
    os.environ.setdefault("LABKIT_PROGRESS", "0")
    lk.config.quiet_tensorflow()
    lk.set_seed(0)
    start = time.perf_counter()
    meta = {"load_average_start": list(os.getloadavg()), "config": dict(CFG), "delta": DELTA}
    data = corpora.service_corpora(
        CFG["public_plays"], CFG["private_plays"], CFG["seq_len"], CFG["canary_counts"],
        CFG["secret_length"], max_public_chars=CFG["max_public_chars"],
        max_private_chars=CFG["max_private_chars"], seed=0)  # fmt: skip
    n = len(data["private"][0])
    meta["data"] = {"public_chunks": len(data["public"][0]), "private_chunks": n,
                    "heldout_chunks": len(data["heldout"][0]),
                    "rare_lines": len(data["rare_lines"]),
                    "candidate_space": data["spaces"][0].size}  # fmt: skip
    t = time.perf_counter()
    pre = sv.pretrain(data, CFG["units"], CFG["pretrain_epochs"], seed=0)
    rows = [fine_tune_row("pretrained", None, 0, sv.measure(pre, data), time.perf_counter() - t)]
    meta["params"] = lk.models.count_params(pre)
    noise = {e: lk.dp.dpsgd_noise_multiplier(e, CFG["batch_size"], n, CFG["epochs"], DELTA)
             for e in CFG["epsilons"]}  # fmt: skip
    meta["noise_multipliers"] = {str(e): v for e, v in noise.items()}
    runs = [("nonprivate", None)] + [(m, e) for e in CFG["epsilons"]
                                     for m in ("full", "head", "scratch")]  # fmt: skip
    for seed in CFG["seeds"]:
        for mode, eps in runs:
            t = time.perf_counter()
            kw = dict(epochs=CFG["nonprivate_epochs"]) if mode == "nonprivate" else dict(
                epochs=CFG["epochs"], noise_multiplier=noise[eps],
                batch_size=CFG["batch_size"], dp_learning_rate=CFG["dp_learning_rate"],
                l2_norm_clip=CFG["l2_norm_clip"])  # fmt: skip
            m = sv.fine_tune(mode, data, pre, delta=DELTA, seed=seed, **kw)
            rows.append(fine_tune_row(mode, eps, seed, m, time.perf_counter() - t))
            if mode == "nonprivate" or (mode == "full" and eps in (CFG["epsilons"][0], 8.0)):
                rows += attack_rows(m["model"], data, mode, eps, seed, pre)
            print(
                f"seed {seed} {mode} eps {eps}: ppl {m['perplexity']:.2f} "
                f"exp {max(m['exposure']):.1f} ({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    rows += attack_rows(pre, data, "pretrained", None, 0, pre)
    meta["lm_seconds"] = time.perf_counter() - start
    t = time.perf_counter()
    users, candidates = sv.service_query_log(lk.scale(["macbeth", "hamlet"], None))
    meta["query_log"] = {"users": len(users), "distinct": len({q for u in users for q in u}),
                         "candidates": len(candidates)}  # fmt: skip
    for r in sv.query_log_recall(users, CFG["query_epsilons"], CFG["query_k"],
                                 CFG["max_partitions"], DELTA, candidates,
                                 CFG["query_seeds"]):  # fmt: skip
        rows.append({"table": "query_log", **r})
    meta["query_seconds"] = time.perf_counter() - t
    meta["seconds"] = time.perf_counter() - start
    meta["load_average_end"] = list(os.getloadavg())
    out = write_results("model_service", rows, meta)
    print(f"wrote {out} ({len(rows)} rows, {meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
