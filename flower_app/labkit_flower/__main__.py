"""Run the task on Flower's Simulation Engine and on labkit's loop; print both, round by round.

Usage: uv run --group flower python -m labkit_flower [--num-rounds 3] [--privacy dp-server]
       [--variant secagg] [--backend ray]
"""

from __future__ import annotations

import argparse
import sys

from .engine import labkit_loop, simulate
from .task import PRIVACY, TaskConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-clients", type=int, default=4)
    parser.add_argument("--client-fraction", type=float, default=0.5)
    parser.add_argument("--num-rounds", type=int, default=3)
    parser.add_argument("--privacy", choices=PRIVACY, default="none")
    parser.add_argument("--noise-multiplier", type=float, default=0.0)
    parser.add_argument("--l2-norm-clip", type=float, default=1.0)
    parser.add_argument("--variant", choices=("fedavg", "secagg"), default="fedavg")
    parser.add_argument("--backend", choices=("inprocess", "ray"), default="inprocess")
    args = parser.parse_args(argv)
    cfg = TaskConfig(
        num_clients=args.num_clients,
        client_fraction=args.client_fraction,
        num_rounds=args.num_rounds,
        privacy=args.privacy,
        noise_multiplier=args.noise_multiplier,
        l2_norm_clip=args.l2_norm_clip,
    )
    record = simulate(cfg, variant=args.variant, backend=args.backend)
    history, _ = labkit_loop(cfg)
    print("| round | Flower accuracy | labkit accuracy | Flower s (cumulative) |")
    print("|---|---|---|---|")
    for r, acc, t in zip(record.rounds, record.test_accuracy, record.wall_time, strict=True):
        print(f"| {r} | {acc:.4f} | {history.test_accuracy[r - 1]:.4f} | {t:.2f} |")
    if record.error:
        print(f"error: {record.error}", file=sys.stderr)
    return 1 if record.error else 0


if __name__ == "__main__":
    sys.exit(main())
