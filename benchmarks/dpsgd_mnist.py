"""DP-SGD on MNIST at delta = 1e-5 for several epsilons: test accuracy, epochs, minutes.

Usage: LABKIT_FULL=1 uv run python benchmarks/dpsgd_mnist.py   (full MNIST, ~1 h on 2 shared cores)
       uv run python benchmarks/dpsgd_mnist.py                 (quick smoke run on a subset)

Recipe: Tramer & Boneh (2021)'s end-to-end tanh CNN, Poisson sampling with expected batch 512,
l2_norm_clip 0.1, SGD with momentum 0.9 and learning rate 0.5, the noise multiplier calibrated by
dp-accounting's RDP accountant so the whole run meets the target epsilon. Each configuration is
written to JSON as soon as it finishes, so an interrupted run keeps what it measured. The full run
writes benchmarks/results/dpsgd_mnist.json; the quick run writes dpsgd_mnist_quick.json. The file
is ``{"meta": machine + num_train, "rows": [...]}``; rows have ``method`` "DP-SGD" or
"non-private" (epsilon null) to select on.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
from _common import print_table, write_results

import labkit as lk

DELTA = 1e-5
BATCH_SIZE = 512
L2_NORM_CLIP = 0.1
LEARNING_RATE = 0.5
MOMENTUM = 0.9
# (target epsilon, epochs): the epsilon <= 3 target first, so it is measured even if cut short.
FULL_CONFIGS = [(3.0, 40), (1.0, 20), (8.0, 40), (2.0, 30), (0.5, 15)]
QUICK_CONFIGS = [(3.0, 2), (8.0, 2)]


def main() -> None:
    """Run every configuration, print a Markdown table, and write the JSON rows."""
    lk.config.quiet_tensorflow()
    full = lk.is_full()
    ds = lk.load_mnist()
    if not full:
        ds = lk.data.subsample(ds, num_train=10_000, num_test=2_000, seed=0)
    n = len(ds.x_train)
    meta = {"num_train": n}
    rows: list[dict] = []
    configs = FULL_CONFIGS if full else QUICK_CONFIGS
    for target, epochs in configs:
        sigma = lk.dp.dpsgd_noise_multiplier(target, BATCH_SIZE, n, epochs, DELTA)
        lk.set_seed(0)
        model = lk.dp.dp_cnn(ds.input_shape, ds.num_classes)
        start = time.perf_counter()

        def report(h: lk.dp.DPSGDHistory, start=start, target=target) -> None:
            print(
                f"  target {target}: epoch {h.epochs[-1]:3d}  eps {h.epsilon[-1]:.3f}  "
                f"acc {h.test_accuracy[-1]:.4f}  {(time.perf_counter() - start) / 60:.1f} min",
                flush=True,
            )

        hist = lk.dp.train_dpsgd(
            model,
            ds.x_train,
            ds.y_train,
            l2_norm_clip=L2_NORM_CLIP,
            noise_multiplier=sigma,
            batch_size=BATCH_SIZE,
            epochs=epochs,
            learning_rate=LEARNING_RATE,
            momentum=MOMENTUM,
            delta=DELTA,
            validation_data=(ds.x_test, ds.y_test),
            seed=0,
            on_epoch_end=report,
        )
        rows.append(
            {
                "method": "DP-SGD",
                "epsilon": hist.epsilon[-1],
                "delta": DELTA,
                "test_accuracy": hist.test_accuracy[-1],
                "epochs": epochs,
                "noise_multiplier": sigma,
                "l2_norm_clip": L2_NORM_CLIP,
                "batch_size": BATCH_SIZE,
                "minutes": (time.perf_counter() - start) / 60,
                "target_epsilon": target,
                "epsilon_pld": lk.dp.dpsgd_epsilon(
                    sigma,
                    BATCH_SIZE,
                    n,
                    epochs,
                    DELTA,
                    accountant="pld",
                    # the steps train_dpsgd took and the noise was calibrated for
                    steps=lk.dp.schedule(n, BATCH_SIZE, epochs).steps,
                ),
                "sampling": "poisson",
                "accountant": "rdp",
                "learning_rate": LEARNING_RATE,
                "momentum": MOMENTUM,
                "model": "dp_cnn (Tramer & Boneh 2021, tanh)",
                "history": {
                    "epoch": hist.epochs,
                    "epsilon": hist.epsilon,
                    "test_accuracy": hist.test_accuracy,
                },
            }
        )
        write_results("dpsgd_mnist", rows, meta)
    # Non-private reference: same model, same batch size, plain SGD with momentum.
    lk.set_seed(0)
    model = lk.dp.dp_cnn(ds.input_shape, ds.num_classes)
    model.compile(
        optimizer=tf.keras.optimizers.SGD(0.05, momentum=MOMENTUM),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    epochs = 20 if full else 2
    start = time.perf_counter()
    model.fit(ds.x_train, ds.y_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
    rows.append(
        {
            "method": "non-private",
            "epsilon": None,
            "delta": None,
            "test_accuracy": lk.models.evaluate(model, ds.x_test, ds.y_test)[1],
            "epochs": epochs,
            "noise_multiplier": 0.0,
            "l2_norm_clip": None,
            "batch_size": BATCH_SIZE,
            "minutes": (time.perf_counter() - start) / 60,
        }
    )
    out = write_results("dpsgd_mnist", rows, meta)
    print()
    print_table(rows, ["method", "epsilon", "delta", "test_accuracy", "epochs",
                       "noise_multiplier", "minutes"], precision=4)  # fmt: skip
    print(f"\nwrote {out}  (mean test accuracy {np.mean([r['test_accuracy'] for r in rows]):.4f})")


if __name__ == "__main__":
    main()
