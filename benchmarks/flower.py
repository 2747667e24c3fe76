"""labkit's loop beside Flower 1.23 (simulation, gRPC deployment), and DP / secure aggregation.

One task (MNIST subset, IID, logistic regression, FedAvg E=1 B=10) on every engine:
- labkit's loop (``lk.fl.fedavg`` with ``make_client_update``) and Flower's Simulation Engine
  (this repository's ServerApp/ClientApps; in-process backend, see flower_app/labkit_flower);
- Flower's deployment: a SuperLink and 2 SuperNodes over gRPC on 127.0.0.1 (flower_app/deploy.py),
  secured (TLS with a private CA, authenticated SuperNodes: the default) and ``--insecure``
  (plaintext, any node may join), run back to back in the same process with the load recorded;
- user-level DP: labkit's ``DPFedAvgAggregator`` vs Flower's server- and client-side fixed
  clipping wrappers (same clip, same noise multiplier, same accountant: dp-accounting RDP);
- secure aggregation: labkit's Paillier ``SecureAggregator`` vs Flower's SecAgg+ workflow.

Rows: engine, clients, rounds, seconds_per_round, test_accuracy, privacy, epsilon,
bytes_up_per_client_per_round (labkit: the payload it counts; Flower: the serialized content
of every reply during training, SecAgg+'s key-exchange stages included).

Usage (the shared writer of benchmarks/_common.py: a quick run writes flower_quick.json and
never overwrites the full result):
    uv run --group flower python benchmarks/flower.py               # quick (minutes)
    LABKIT_FULL=1 uv run --group flower python benchmarks/flower.py  # full MNIST, 10 rounds
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "flower_app"))  # deploy.py lives beside the app package
sys.path.insert(0, str(ROOT / "benchmarks"))  # the shared writer

from _common import write_results  # noqa: E402
from deploy import deploy  # noqa: E402

import labkit as lk  # noqa: E402
from labkit_flower.engine import labkit_loop, simulate  # noqa: E402
from labkit_flower.task import TaskConfig, epsilon  # noqa: E402

KEYS = (
    "engine",
    "clients",
    "rounds",
    "seconds_per_round",
    "test_accuracy",
    "privacy",
    "epsilon",
    "bytes_up_per_client_per_round",
)
DELTA = 1e-5


def task() -> TaskConfig:
    """The shared task; every client takes part every round (SecAgg+ needs it here)."""
    return TaskConfig(
        num_clients=4,
        client_fraction=1.0,
        num_rounds=lk.config.scale(3, 10),
        model="logistic",
        small=False,
        num_train=lk.config.scale(2000, 0),
        num_test=lk.config.scale(1000, 0),
        noise_multiplier=0.3,
        l2_norm_clip=0.5,
        round_timeout=600.0,
    )


def row(engine, cfg, seconds_per_round, accuracy, privacy, eps, bytes_up) -> dict:
    return dict(
        zip(
            KEYS,
            (
                engine,
                cfg.num_clients,
                cfg.num_rounds,
                float(seconds_per_round),
                float(accuracy),
                privacy,
                eps,
                int(bytes_up),
            ),
            strict=True,
        )
    )


def labkit_row(engine, cfg, aggregator=None, privacy="none", eps=None, bytes_up=None) -> dict:
    history, seconds = labkit_loop(cfg, aggregator=aggregator)
    per_round = history.bytes_up[-1] // (cfg.num_rounds * cfg.clients_per_round)
    return row(
        engine,
        cfg,
        seconds / cfg.num_rounds,
        history.final_accuracy,
        privacy,
        eps,
        per_round if bytes_up is None else bytes_up,
    )


def flower_row(engine, cfg, record, privacy="none", eps=None) -> dict:
    if record["error"]:
        raise RuntimeError(f"{engine} failed: {record['error']}")
    rounds = len(record["rounds"])
    return row(
        engine,
        cfg,
        record["wall_time"][-1] / rounds,
        record["test_accuracy"][-1],
        privacy,
        eps,
        record["bytes_up"] // (rounds * cfg.clients_per_round),
    )


def main() -> None:
    """Run every engine and variant, print a Markdown table, write results/flower.json."""
    # A plain `kill` runs deploy()'s clean-up too (a background job ignores Ctrl-C's SIGINT).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    warnings.simplefilter("ignore", lk.he.InsecureKeyWarning)
    lk.config.set_seed(0)
    cfg = task()
    rows, extra = [], {}
    eps = epsilon(cfg.replace(privacy="dp-server"), DELTA)

    # The deployments first: the slowest part, and the one that fails if anything does.
    two = cfg.replace(num_clients=2)
    deployed = []
    timeout = lk.config.scale(1800.0, 3600.0)
    for label, insecure in (
        ("Flower deployment (gRPC, loopback)", True),
        ("Flower deployment (TLS + node authentication, loopback)", False),
    ):
        load = os.getloadavg()[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the --insecure warning, on purpose
            dep = deploy(two, timeout=timeout, insecure=insecure)
        deployed.append(flower_row(label, two, dep, "none"))
        deployed[-1]["transport"] = "plaintext" if insecure else "TLS + node authentication"
        # TCP payload from the SuperNodes (set-up, polling and TLS included), per client-round.
        deployed[-1]["wire_bytes_up_per_client_per_round"] = dep["wire_bytes_up"] // (
            len(dep["rounds"]) * two.clients_per_round
        )
        key = "deployment" if insecure else "secure_deployment"
        extra[key] = {
            k: dep[k]
            for k in ("startup_seconds", "total_seconds", "wall_time", "client_timings", "rounds")
        }
        extra[key]["load_average_1min_before"] = round(load, 2)
    insecure_row, secure_row = deployed
    extra["tls_overhead"] = {
        "seconds_per_round_ratio": secure_row["seconds_per_round"]
        / insecure_row["seconds_per_round"],
        "note": "one run each, back to back in one process; the load before each is recorded",
    }

    rows.append(labkit_row("labkit loop", cfg))
    rows.append(flower_row("Flower simulation", cfg, simulate(cfg).as_dict()))

    dp = lk.dp.DPFedAvgAggregator(
        cfg.l2_norm_clip, cfg.noise_multiplier, cfg.clients_per_round, seed=0
    )
    rows.append(labkit_row("labkit loop", cfg, dp, "DP-FedAvg (labkit, server noise)", eps))
    for privacy, label in (
        ("dp-server", "DP, Flower server-side fixed clipping"),
        ("dp-client", "DP, Flower client-side fixed clipping"),
    ):
        record = simulate(cfg.replace(privacy=privacy)).as_dict()
        rows.append(flower_row("Flower simulation", cfg, record, label, eps))

    key_bits = lk.config.scale(1024, 2048)
    keys = lk.he.cached_keypair(key_bits, allow_insecure=True)
    heaviest = 2 * cfg.num_train if cfg.num_train else 120_000  # headroom: sum of weights
    spec = lk.he.PackingSpec(-0.25, 0.25, 16, heaviest)
    secure = lk.he.SecureAggregator(*keys, spec)
    row_he = labkit_row("labkit loop", cfg, secure, f"secure aggregation (Paillier {key_bits})")
    row_he["bytes_up_per_client_per_round"] = secure.history[-1]["bytes_up_per_client"]
    rows.append(row_he)
    record = simulate(cfg, variant="secagg").as_dict()
    rows.append(flower_row("Flower simulation", cfg, record, "secure aggregation (SecAgg+)"))

    rows += [labkit_row("labkit loop", two), *deployed]
    meta = {"settings": cfg.to_run_config(), "delta": DELTA, **extra}
    path = write_results("flower", rows, meta)
    print("| engine | clients | privacy | s/round | accuracy | epsilon | bytes up/client/round |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        e = "-" if r["epsilon"] is None else f"{r['epsilon']:.3g}"
        print(
            f"| {r['engine']} | {r['clients']} | {r['privacy']} | {r['seconds_per_round']:.2f} "
            f"| {r['test_accuracy']:.4f} | {e} | {r['bytes_up_per_client_per_round']:,} |"
        )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
