"""FedAvg four ways on MNIST: plain, secure aggregation (Paillier), DP-FedAvg, secure + DP.

Every variant runs the same ``labkit.fl.fedavg`` loop with a different aggregator, from the same
initial weights and the same client sampling seed, so the rows differ only in the aggregator.
The results file is ``{"meta": settings + machine, "rows": [...]}`` (``benchmarks/_common.py``)
with two tables. ``table="runs"``: one row per variant, ``method, test_accuracy, num_rounds,
epsilon, delta, seconds, bytes_up_per_client_per_round`` (+ the accuracy curve), selected by
``secure_aggregation`` / ``dp`` (booleans), ``num_clients`` and ``noise_multiplier``. ``epsilon``
is user-level (dp-accounting, RDP, Poisson client sampling at q = clients_per_round /
num_clients); null for the non-DP rows. ``table="accounting"``: epsilon for the same noise on
the mean update with more and more clients: user-level DP needs many users; with 100 it is weak.

Usage:
    uv run python benchmarks/combining.py              # quick: 6000-example subset, 1024-bit key
    LABKIT_FULL=1 uv run python benchmarks/combining.py  # full MNIST, 2048-bit key
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from _common import print_table, write_results

import labkit as lk

KEYS = (
    "method",
    "test_accuracy",
    "num_rounds",
    "epsilon",
    "delta",
    "seconds",
    "bytes_up_per_client_per_round",
)


def settings() -> dict:
    """Return the run's sizes (quick or full)."""
    return {
        "model": "logistic",  # 7850 weights: a 2048-bit secure round takes seconds, not minutes
        "partition": "iid",
        "num_train": lk.scale(6_000, None),
        "num_test": lk.scale(2_000, None),
        "num_clients": 100,
        "many_clients": 1_000,
        "client_fraction": 0.1,
        "num_rounds": lk.scale(20, 50),
        "local_epochs": 1,
        "batch_size": 10,
        "learning_rate": 0.1,
        "key_bits": lk.scale(1024, 2048),
        "value_range": 0.25,  # per-value packing range [-r, r]; updates here stay below ~0.1
        "precision_bits": 16,
        "l2_norm_clip": 0.5,  # quick: ~median update norm; full: below it (every update clipped)
        "noise_multipliers": [0.3, 1.0],
        "delta": 1e-5,
        "seed": 0,
    }


def make_clients(ds, num_clients: int, partition: str, seed: int):
    """Return the clients' ``(x, y)`` pairs for one partition of the training set."""
    parts = lk.data.partition(ds.y_train, num_clients, partition, seed=seed)
    return lk.fl.client_datasets(ds.x_train, ds.y_train, parts)


def run_one(method: str, ds, clients, cfg: dict, aggregator, bytes_up: int, dp=None) -> dict:
    """Run FedAvg with ``aggregator`` from seeded initial weights; return one result row."""
    model = lk.build_model(cfg["model"], ds.input_shape, ds.num_classes, seed=cfg["seed"])
    start = time.perf_counter()
    hist = lk.fl.fedavg(
        model,
        clients,
        cfg["num_rounds"],
        client_fraction=cfg["client_fraction"],
        local_epochs=cfg["local_epochs"],
        batch_size=cfg["batch_size"],
        learning_rate=cfg["learning_rate"],
        aggregator=aggregator,
        test_data=(ds.x_test, ds.y_test),
        seed=cfg["seed"],
        description=method,
    )
    seconds = time.perf_counter() - start
    m = lk.fl.num_sampled_clients(len(clients), cfg["client_fraction"])
    row = {
        "table": "runs",
        "secure_aggregation": "secure" in method,
        "dp": dp is not None,
        "method": method,
        "test_accuracy": hist.final_accuracy,
        "num_rounds": hist.rounds[-1],
        "epsilon": None,
        "delta": None,
        "seconds": seconds,
        "bytes_up_per_client_per_round": bytes_up,
        "num_clients": len(clients),
        "clients_per_round": m,
        "noise_multiplier": None,
        "l2_norm_clip": None,
        "accuracy_curve": [round(a, 4) for a in hist.test_accuracy],
    }
    if dp is not None:
        row.update(
            epsilon=dp.epsilon(len(clients), cfg["delta"]),
            delta=cfg["delta"],
            noise_multiplier=dp.noise_multiplier,
            l2_norm_clip=dp.l2_norm_clip,
            clipped_fraction=float(np.mean([h["clipped"] / h["clients"] for h in dp.history])),
        )
    return row


def secure(cfg: dict, keys, weighted: bool, max_summands: int) -> lk.he.SecureAggregator:
    """Return a SecureAggregator packing values in [-r, r] with room for ``max_summands``."""
    r = cfg["value_range"]
    spec = lk.he.PackingSpec(-r, r, cfg["precision_bits"], max_summands)
    return lk.he.SecureAggregator(*keys, spec, weighted=weighted)


def accounting_rows(cfg: dict, clients_per_round: int = 100, noise_multiplier: float = 1.0):
    """Return epsilon for m=100 clients per round at z=1 (fixed noise on the mean) vs K."""
    rows = []
    for num_clients in (100, 1_000, 10_000, 100_000, 1_000_000):
        for num_rounds in (cfg["num_rounds"], 1_000):
            rows.append(
                {
                    "table": "accounting",
                    "num_clients": num_clients,
                    "clients_per_round": clients_per_round,
                    "noise_multiplier": noise_multiplier,
                    "num_rounds": num_rounds,
                    "delta": cfg["delta"],
                    "epsilon": lk.dp.dpfedavg_epsilon(
                        noise_multiplier, clients_per_round, num_clients, num_rounds, cfg["delta"]
                    ),
                }
            )
    return rows


def main() -> None:
    """Run every variant side by side, print a Markdown table, write the JSON."""
    cfg = settings()
    warnings.simplefilter("ignore", lk.he.InsecureKeyWarning)  # 1024 bits only in quick mode
    lk.set_seed(cfg["seed"])
    ds = lk.load_mnist()
    if cfg["num_train"] is not None:
        ds = lk.data.subsample(ds, cfg["num_train"], cfg["num_test"], seed=cfg["seed"])
    clients = make_clients(ds, cfg["num_clients"], cfg["partition"], cfg["seed"])
    m = lk.fl.num_sampled_clients(len(clients), cfg["client_fraction"])
    t = time.perf_counter()
    keys = lk.he.cached_keypair(cfg["key_bits"], allow_insecure=True)
    keygen_seconds = time.perf_counter() - t
    probe = lk.build_model(cfg["model"], ds.input_shape, ds.num_classes, seed=cfg["seed"])
    plain_bytes = lk.fl.model_bytes(probe.trainable_variables)
    rows = []

    rows.append(
        run_one("FedAvg (plain)", ds, clients, cfg, lk.aggregation.WeightedMean(), plain_bytes)
    )
    # Headroom for the heaviest possible cohort: the m largest clients' example counts.
    heaviest = int(sum(sorted((len(y) for _, y in clients), reverse=True)[:m]))
    agg = secure(cfg, keys, weighted=True, max_summands=heaviest)
    row = run_one("FedAvg + secure aggregation", ds, clients, cfg, agg, 0)
    row["bytes_up_per_client_per_round"] = agg.history[-1]["bytes_up_per_client"]
    row["key_bits"] = cfg["key_bits"]
    row["clipped_values"] = int(sum(h["clipped_values"] for h in agg.history))
    rows.append(row)

    clip = cfg["l2_norm_clip"]
    for z in cfg["noise_multipliers"]:
        dp = lk.dp.DPFedAvgAggregator(clip, z, m, seed=cfg["seed"])
        rows.append(run_one(f"DP-FedAvg z={z:g}", ds, clients, cfg, dp, plain_bytes, dp))

    # Secure + DP: clipped updates have every value in [-C, C]; noise added by the key holder.
    z = cfg["noise_multipliers"][-1]
    inner = lk.he.SecureAggregator(
        *keys, lk.he.PackingSpec(-clip, clip, cfg["precision_bits"], m), False
    )
    dp = lk.dp.DPFedAvgAggregator(clip, z, m, sum_aggregator=inner, seed=cfg["seed"])
    row = run_one(f"secure + DP-FedAvg z={z:g}", ds, clients, cfg, dp, 0, dp)
    row["bytes_up_per_client_per_round"] = inner.history[-1]["bytes_up_per_client"]
    row["key_bits"] = cfg["key_bits"]
    rows.append(row)

    # More, smaller clients: the same data split over 10x as many users, 10x as many per round.
    many = make_clients(ds, cfg["many_clients"], cfg["partition"], cfg["seed"])
    m_many = lk.fl.num_sampled_clients(len(many), cfg["client_fraction"])
    label = f"FedAvg (plain), {len(many)} clients"
    rows.append(run_one(label, ds, many, cfg, lk.aggregation.WeightedMean(), plain_bytes))
    dp = lk.dp.DPFedAvgAggregator(clip, z, m_many, seed=cfg["seed"])
    rows.append(
        run_one(f"DP-FedAvg z={z:g}, {len(many)} clients", ds, many, cfg, dp, plain_bytes, dp)
    )

    accounting = accounting_rows(cfg)
    path = write_results("combining", rows + accounting, {**cfg, "keygen_seconds": keygen_seconds})
    print_table(rows, ["method", "num_clients", "test_accuracy", "num_rounds", "epsilon",
                       "seconds", "bytes_up_per_client_per_round"], precision=4)  # fmt: skip
    print(f"\nuser-level epsilon at delta={cfg['delta']:g}, m=100 clients per round, z=1:")
    print_table(accounting, ["num_clients", "clients_per_round", "num_rounds", "epsilon"])
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
