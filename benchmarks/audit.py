"""Chapter 03's audit: does DP-SGD stop a membership attack? One-run canary audits at several eps.

Usage: LABKIT_FULL=1 uv run python benchmarks/audit.py   (3 seeds x 6 settings, ~20 min on 2 cores)
       uv run python benchmarks/audit.py                 (quick smoke run, writes audit_quick.json)

Setup (``lk.experiments.audit.canary_audit_experiment``): a small MNIST training set plus
mislabelled canaries, each inserted with probability 1/2; an MLP trained by labkit's DP-SGD for
many epochs with clip norm 1, either with no noise (non-private: the same code, only the noise
differs) or with the noise dp-accounting calibrates to a target epsilon at delta 1e-5. The auditor
guesses "in" for the half of its fixed number of guesses with the lowest loss on the canary's wrong
label and "out" for the other half, and turns the count of correct guesses into a lower bound on
epsilon at 95% confidence (Steinke, Nasr & Jagielski 2023). Rows: ``epsilon`` (accountant, null
for non-private), ``epsilon_lower_bound``, ``confidence``, ``auc`` (canary scores, in vs out),
``test_accuracy``, ``method`` ("non-private" / "DP-SGD"), ``seed``, and the audit's counts. Each
finished run is written at once, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

from _common import print_table, write_results

import labkit as lk

DELTA, CONFIDENCE = 1e-5, 0.95
FULL = dict(num_train=1000, num_canaries=500, num_guesses=100, epochs=60, batch_size=50)
QUICK = dict(num_train=250, num_canaries=100, num_guesses=20, epochs=30, batch_size=50)
FULL_EPSILONS, QUICK_EPSILONS = [None, 8.0, 4.0, 2.0, 1.0, 0.5], [None, 1.0]
FULL_SEEDS, QUICK_SEEDS = [0, 1, 2], [0]


def main() -> None:
    """Run every (seed, epsilon), print a Markdown table, and write the JSON rows."""
    lk.config.quiet_tensorflow()
    full = lk.is_full()
    ds = lk.load_mnist()
    settings = FULL if full else QUICK
    meta = {
        **settings,
        "delta": DELTA,
        "l2_norm_clip": 1.0,
        "learning_rate": 0.2,
        "momentum": 0.9,
        "hidden": [128],
        "audit": "one-run (Steinke, Nasr & Jagielski 2023)",
        "noise": "OS-seeded (noise_seed=None)",
    }
    rows: list[dict] = []
    for seed in FULL_SEEDS if full else QUICK_SEEDS:
        for epsilon in FULL_EPSILONS if full else QUICK_EPSILONS:
            run = lk.experiments.audit.canary_audit_experiment(
                ds, epsilon, delta=DELTA, confidence=CONFIDENCE, seed=seed, **settings
            )
            a = run["audit"]
            rows.append(
                {
                    "method": "non-private" if epsilon is None else "DP-SGD",
                    "seed": seed,
                    "epsilon": run["epsilon"],
                    "noise_multiplier": run["noise_multiplier"],
                    "epsilon_lower_bound": a.epsilon_lower_bound,
                    "confidence": a.confidence,
                    "num_canaries": a.num_canaries,
                    "num_guesses": a.num_guesses,
                    "num_correct": a.num_correct,
                    "auc": a.auc,
                    "test_accuracy": run["test_accuracy"],
                }
            )
            print(f"seed {seed}, epsilon {epsilon}: {a.summary()}", flush=True)
            write_results("audit", rows, meta)
    cols = [
        "method",
        "seed",
        "epsilon",
        "epsilon_lower_bound",
        "num_correct",
        "auc",
        "test_accuracy",
    ]
    print_table(rows, cols)


if __name__ == "__main__":
    main()
