"""DP-SGD on MNIST at delta = 1e-5 for several epsilons: test accuracy, epochs, minutes.

Usage: LABKIT_FULL=1 uv run python benchmarks/dpsgd_mnist.py   (full MNIST, ~1 h on 2 quiet cores)
       uv run python benchmarks/dpsgd_mnist.py                 (quick smoke run on a subset)
       ... dpsgd_mnist.py --part scatternet   (only the ScatterNet rows; the others are kept)

Recipe: Tramer & Boneh (2021)'s end-to-end tanh CNN, Poisson sampling with expected batch 512,
l2_norm_clip 0.1, SGD with momentum 0.9 and learning rate 0.5, the noise multiplier calibrated by
dp-accounting's RDP accountant so the whole run meets the target epsilon. Each configuration is
written to JSON as soon as it finishes, so an interrupted run keeps what it measured. The full run
writes benchmarks/results/dpsgd_mnist.json; the quick run writes dpsgd_mnist_quick.json. The file
is ``{"meta": machine + num_train, "rows": [...]}``; rows have ``method`` "DP-SGD" or
"non-private" (epsilon null) to select on.

ScatterNet (``--part scatternet``, also run by default): Tramer & Boneh (2021)'s best MNIST
model, a linear classifier on ScatterNet features (kymatio's scattering transform, J=2, L=8,
then GroupNorm with 27 groups applied per example: data-independent, so it costs no privacy;
the paper's 98.7 % used privately estimated normalisation statistics instead). Their
hyper-parameters: expected batch 4096, learning rate 8, momentum 0.9, l2_norm_clip 0.1, 60
epochs. Three seeds; one row with method "DP-SGD (ScatterNet)" carries every seed's accuracy,
the mean and the standard deviation. ``meta["published"]`` lists the published anchors with
their sources, for the chapter's plot.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from _common import print_table, read_rows, write_results

import labkit as lk

DELTA = 1e-5
BATCH_SIZE = 512
L2_NORM_CLIP = 0.1
LEARNING_RATE = 0.5
MOMENTUM = 0.9
# (target epsilon, epochs): the epsilon <= 3 target first, so it is measured even if cut short.
FULL_CONFIGS = [(3.0, 40), (1.0, 20), (8.0, 40), (2.0, 30), (0.5, 15)]
QUICK_CONFIGS = [(3.0, 2), (8.0, 2)]
SCATTER = {"batch_size": 4096, "learning_rate": 8.0, "epochs": 60, "num_groups": 27, "J": 2, "L": 8}
SCATTER_QUICK = {**SCATTER, "batch_size": 256, "epochs": 2}
SCATTER_METHOD = "DP-SGD (ScatterNet)"
SEEDS = (0, 1, 2)
# Outside the repository: ~160 MB for the 70,000 MNIST images.
FEATURE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "labkit"
PUBLISHED = [
    {"method": "ScatterNet + linear, DP-SGD", "epsilon": 3.0, "delta": 1e-5,
     "test_accuracy": 0.987, "source": "Tramer & Boneh 2021, ICLR (arXiv:2011.11660), Table 1"},
    {"method": "ScatterNet + CNN, DP-SGD", "epsilon": 3.0, "delta": 1e-5,
     "test_accuracy": 0.987, "source": "Tramer & Boneh 2021, ICLR (arXiv:2011.11660), Table 1"},
    {"method": "end-to-end tanh CNN, DP-SGD", "epsilon": 3.0, "delta": 1e-5,
     "test_accuracy": 0.981, "source": "Tramer & Boneh 2021, ICLR (arXiv:2011.11660), Table 1"},
    {"method": "tempered sigmoid CNN, DP-SGD", "epsilon": 2.93, "delta": 1e-5,
     "test_accuracy": 0.981, "source": "Papernot et al. 2021, AAAI (arXiv:2007.14191)"},
]  # fmt: skip


def main() -> None:
    """Run the parts asked for, print a Markdown table, and write the JSON rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", choices=["all", "end-to-end", "scatternet"], default="all")
    part = parser.parse_args().part
    lk.config.quiet_tensorflow()
    full = lk.is_full()
    ds = lk.load_mnist()
    meta = {"num_train": len(ds.x_train) if full else 10_000, "published": PUBLISHED}
    old = read_rows("dpsgd_mnist", full)
    if part != "scatternet":
        rows = end_to_end(ds, full, meta, [r for r in old if r["method"] == SCATTER_METHOD])
    else:
        rows = [r for r in old if r["method"] != SCATTER_METHOD]
    if part != "end-to-end":
        done = [r for r in old if r["method"] == SCATTER_METHOD]
        rows = [r for r in rows if r["method"] != SCATTER_METHOD]
        rows.append(scatternet(ds, full, meta, rows, done[0] if done else None))
    out = write_results("dpsgd_mnist", rows, meta)
    print()
    print_table(rows, ["method", "epsilon", "delta", "test_accuracy", "epochs",
                       "noise_multiplier", "minutes"], precision=4)  # fmt: skip
    print(f"\nwrote {out}")


def end_to_end(ds: lk.data.Dataset, full: bool, meta: dict, keep: list[dict]) -> list[dict]:
    """The tanh CNN on pixels at several epsilons, then the non-private reference."""
    if not full:
        ds = lk.data.subsample(ds, num_train=10_000, num_test=2_000, seed=0)
    n = len(ds.x_train)
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
        write_results("dpsgd_mnist", rows + keep, meta)
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
    return rows + keep


def scatternet(
    ds: lk.data.Dataset, full: bool, meta: dict, others: list[dict], done: dict | None
) -> dict:
    """Linear DP-SGD on ScatterNet features, one run per seed; the row is rewritten per seed.

    Seeds already in ``done`` (the recorded row) with the same settings are kept, not re-run:
    an interrupted run resumes where it stopped.
    """
    from labkit.data.scattering import scattering_features

    cfg = SCATTER if full else SCATTER_QUICK
    if not full:
        ds = lk.data.subsample(ds, num_train=2_000, num_test=500, seed=0)
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    feats = {
        split: scattering_features(x, cfg["J"], cfg["L"], cfg["num_groups"], FEATURE_CACHE)
        for split, x in (("train", ds.x_train), ("test", ds.x_test))
    }
    feature_seconds = time.perf_counter() - start
    n, epochs, batch = len(feats["train"]), cfg["epochs"], cfg["batch_size"]
    sigma = lk.dp.dpsgd_noise_multiplier(3.0, batch, n, epochs, DELTA)
    row = {
        "method": SCATTER_METHOD, "epsilon": None, "delta": DELTA, "test_accuracy": None,
        "epochs": epochs, "noise_multiplier": sigma, "l2_norm_clip": L2_NORM_CLIP,
        "batch_size": batch, "minutes": None, "target_epsilon": 3.0, "sampling": "poisson",
        "accountant": "rdp", "learning_rate": cfg["learning_rate"], "momentum": MOMENTUM,
        "model": "linear on ScatterNet features (Tramer & Boneh 2021)",
        "features": f"kymatio Scattering2D J={cfg['J']} L={cfg['L']}, per-example "
                    f"GroupNorm {cfg['num_groups']} groups (data-independent)",
        "num_train": n, "feature_seconds": feature_seconds, "seeds": [],
        "test_accuracy_seeds": [], "seconds_per_seed": [], "load_average_1min": [load_before],
        "history": [],
    }  # fmt: skip
    same = ("epochs", "batch_size", "learning_rate", "noise_multiplier", "features", "num_train")
    if done and all(done.get(k) == row[k] for k in same):
        keep = ("seeds", "test_accuracy_seeds", "seconds_per_seed", "load_average_1min", "history")
        summary = ("epsilon", "test_accuracy", "test_accuracy_std", "test_accuracy_min",
                   "test_accuracy_max", "minutes", "epsilon_pld")  # fmt: skip
        row.update({k: done.get(k) for k in summary})
        row.update({k: list(done[k]) for k in keep})
        row["load_average_1min"].append(load_before)
    for seed in [s for s in (SEEDS if full else SEEDS[:1]) if s not in row["seeds"]]:
        lk.set_seed(seed)
        model = lk.models.logistic(feats["train"].shape[1:], ds.num_classes)
        t0 = time.perf_counter()
        hist = lk.dp.train_dpsgd(
            model, feats["train"], ds.y_train, l2_norm_clip=L2_NORM_CLIP, noise_multiplier=sigma,
            batch_size=batch, epochs=epochs, learning_rate=cfg["learning_rate"],
            momentum=MOMENTUM, delta=DELTA, validation_data=(feats["test"], ds.y_test),
            seed=seed,
        )  # fmt: skip
        row["seconds_per_seed"].append(time.perf_counter() - t0)
        row["load_average_1min"].append(os.getloadavg()[0])
        row["seeds"].append(seed)
        row["test_accuracy_seeds"].append(hist.test_accuracy[-1])
        row["history"].append({"epoch": hist.epochs, "test_accuracy": hist.test_accuracy})
        acc = np.array(row["test_accuracy_seeds"])
        row.update(
            epsilon=hist.epsilon[-1],
            test_accuracy=float(acc.mean()),
            test_accuracy_std=float(acc.std(ddof=1)) if len(acc) > 1 else None,
            test_accuracy_min=float(acc.min()),
            test_accuracy_max=float(acc.max()),
            minutes=float(np.mean(row["seconds_per_seed"])) / 60,
            epsilon_pld=lk.dp.dpsgd_epsilon(
                sigma, batch, n, epochs, DELTA, accountant="pld",
                steps=lk.dp.schedule(n, batch, epochs).steps,
            ),
        )  # fmt: skip
        print(f"  ScatterNet seed {seed}: acc {acc[-1]:.4f}  eps {hist.epsilon[-1]:.3f}  "
              f"{row['seconds_per_seed'][-1] / 60:.1f} min", flush=True)  # fmt: skip
        write_results("dpsgd_mnist", others + [row], meta, full)  # a cut-short run keeps seeds
    return row


if __name__ == "__main__":
    main()
