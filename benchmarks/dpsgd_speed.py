"""DP-SGD training speed: non-private vs TF Privacy 0.9.0's optimizers vs labkit, side by side.

Usage: uv run python benchmarks/dpsgd_speed.py   (about 13 minutes on 2 quiet cores)

Always measures at full size (batch 256 MNIST images) and writes results/dpsgd_speed.json.
Every (model, method) pair runs in its own subprocess, so each peak RSS is that method's own; the
fast methods run ROUNDS times interleaved and keep their best run (the machine is shared), the
TF Privacy optimizers that take minutes run once. A method trains for at least SECONDS seconds
after two warm-up steps (tracing and compilation excluded).

Distance to the machine's limit: each worker also times a large dense matmul (MATMUL_N^3, the
machine's practical peak) and a matmul of the step's own largest shape, right after the step, so
``fraction_of_peak`` = (FLOPs of one step / step time) / peak is measured under the same load.
A step's FLOPs count the matmuls and convolutions of forward, backward and (private) per-example
gradients and norms - the useful work of DP-SGD done the way labkit does it; the TF Privacy rows
are charged the same useful work, so their fraction shows how much more they spend.

Rows carry fields to select on: ``library`` (keras | tf-privacy | labkit), ``variant``,
``model``, ``private``; ``method`` is only for display.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 256
SECONDS = 6.0
MAX_STEPS = 300
MODELS = ("mlp", "cnn")
ROUNDS = 3
MATMUL_N = 1024
# (library, variant, private, display method)
METHODS = (
    ("keras", "non-private", False, "non-private"),
    ("tf-privacy", "DPKerasSGDOptimizer", True, "tfp DPKerasSGDOptimizer"),
    ("tf-privacy", "VectorizedDPKerasSGDOptimizer", True, "tfp VectorizedDPKerasSGDOptimizer"),
    ("tf-privacy", "DPSequential", True, "tfp DPSequential"),
    ("labkit", "ghost", True, "labkit ghost"),
    ("labkit", "clip-only", False, "labkit ghost, clipping only (noise_multiplier=0)"),
    ("labkit", "vectorized", True, "labkit vectorized"),
)
SLOW = ("DPKerasSGDOptimizer", "VectorizedDPKerasSGDOptimizer")


def _build(model: str):
    import labkit as lk

    if model == "mlp":
        return lk.models.mlp((28, 28), 10, hidden=(128,))  # 784-128-10
    return lk.dp.dp_cnn((28, 28), 10)  # the chapter's small CNN (Tramer & Boneh 2021)


def step_flops(model, batch: int, private: bool) -> tuple[float, tuple[int, int, int]]:
    """Return (matmul/conv FLOPs of one training step, the largest GEMM shape (m, k, n)).

    Per Dense/Conv2D layer with P output positions, k = kh*kw*cin inputs and c outputs, each
    GEMM-like pass costs 2*B*P*k*c: forward, input gradient (not for the first layer) and
    weight gradient. DP-SGD (labkit) forms the per-example weight gradients with the same count
    (one batched matmul) and adds norms and the re-weighted sum, 2*B*k*c each.
    """
    import tensorflow as tf

    total, biggest, first = 0.0, (0, 0, 0), True
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Dense):
            positions, k, c = 1, layer.kernel.shape[0], layer.kernel.shape[1]
        elif isinstance(layer, tf.keras.layers.Conv2D):
            kh, kw, cin, c = layer.kernel.shape
            out = layer.output_shape
            positions, k = out[1] * out[2], kh * kw * cin
        else:
            continue
        gemm = 2.0 * batch * positions * k * c
        total += gemm * (2 if first else 3)
        if private:
            total += 4.0 * batch * k * c
        shape = (batch * positions, k, c)
        biggest = max(biggest, shape, key=lambda s: s[0] * s[1] * s[2])
        first = False
    return total, biggest


def _matmul_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """Best-of GFLOP/s of a float32 (m x k) @ (k x n) matmul, timed for about ``seconds``."""
    import tensorflow as tf

    a = tf.random.normal([m, k])
    b = tf.random.normal([k, n])
    mm = tf.function(lambda a, b: tf.matmul(a, b))
    mm(a, b).numpy()
    best, end = float("inf"), time.perf_counter() + seconds
    reps = max(1, int(2e8 / (2 * m * k * n)))  # ~0.1 GFLOP per timing
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(reps):
            out = mm(a, b)
        out.numpy()
        best = min(best, (time.perf_counter() - t) / reps)
    return 2.0 * m * k * n / best / 1e9


def _worker(model_name: str, variant: str) -> dict:
    """Time one method on one model; return its row."""
    import tensorflow as tf

    import labkit as lk

    lk.config.quiet_tensorflow()
    # Seeds without lk.set_seed's op determinism: XLA has no deterministic max-pooling gradient,
    # so TF Privacy's XLA paths cannot run on the CNN with it, and speed needs no bit-exactness.
    tf.keras.utils.set_random_seed(0)
    library, variant, private, method = next(m for m in METHODS if m[1] == variant)
    ds = lk.data.load_mnist()
    x, y = ds.x_train[: BATCH * 20], ds.y_train[: BATCH * 20]
    batches = [(x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]) for i in range(20)]
    clip, sigma, lr = 1.0, 1.0, 0.1
    per_example = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )
    extra: dict = {}
    model = _build(model_name)
    flops, biggest = step_flops(model, BATCH, private or variant == "clip-only")
    if variant == "non-private":
        opt = tf.keras.optimizers.SGD(lr)

        @tf.function
        def train(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(per_example(yb, model(xb, training=True)))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        step = train
    elif variant in SLOW:
        import tensorflow_privacy as tfp

        cls = getattr(tfp, f"{variant}")
        # num_microbatches = batch size: one example per microbatch, i.e. per-example clipping.
        opt = cls(
            l2_norm_clip=clip, noise_multiplier=sigma, num_microbatches=BATCH, learning_rate=lr
        )
        model.compile(optimizer=opt, loss=per_example)
        step = model.train_on_batch
    elif variant == "DPSequential":
        import tensorflow_privacy as tfp
        from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry

        model = tfp.DPSequential(
            l2_norm_clip=clip,
            noise_multiplier=sigma,
            layer_registry=layer_registry.make_default_layer_registry(),
            layers=[tf.keras.layers.InputLayer(input_shape=(28, 28))] + _build(model_name).layers,
        )
        model.compile(
            optimizer=tf.keras.optimizers.SGD(lr),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        # 0.9.0 registers Dense and Embedding only: a Conv2D model falls back to slow clipping.
        extra["fast_clipping_used"] = bool(model._enable_fast_peg_computation)
        step = model.train_on_batch
    else:
        # Noise from the default, cryptographically seeded source: what a user gets.
        dp = lk.dp.DPSGD(
            model,
            clip,
            0.0 if variant == "clip-only" else sigma,
            lr,
            method="vectorized" if variant == "vectorized" else "ghost",
            jit_compile=variant == "vectorized",
        )

        def step(xb, yb):
            dp.step(xb, yb, float(BATCH), BATCH)

    for i in range(2):  # warm-up: tracing and compilation
        step(*batches[i])
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < SECONDS and steps < MAX_STEPS:
        step(*batches[steps % 20])
        steps += 1
    if hasattr(model, "trainable_variables"):
        model.trainable_variables[0].numpy()  # wait for the last step
    elapsed = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    seconds_per_step = elapsed / steps
    big = _matmul_gflops(MATMUL_N, MATMUL_N, MATMUL_N, seconds=2.0)
    own = _matmul_gflops(*biggest, seconds=1.0)
    peak = max(big, own)  # the best matmul throughput this worker saw, under the same load
    achieved = flops / seconds_per_step / 1e9
    return {
        "model": model_name,
        "library": library,
        "variant": variant,
        "private": private,
        "method": method,
        "batch_size": BATCH,
        "examples_per_s": steps * BATCH / elapsed,
        "seconds_per_step": seconds_per_step,
        "steps_timed": steps,
        "peak_rss_mb": peak_rss,
        "flops_per_step": flops,
        "achieved_gflops": achieved,
        "peak_gflops": peak,
        "fraction_of_peak": achieved / peak,
        "large_matmul_gflops": big,
        "largest_gemm": list(biggest),
        "largest_gemm_gflops": own,
        "load_average_1min": round(os.getloadavg()[0], 2),
        **extra,
    }


def _run(model: str, variant: str) -> dict:
    env = dict(os.environ, LABKIT_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", model, variant],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        errors = [ln.strip() for ln in proc.stderr.splitlines() if "Error" in ln]
        reason = errors[-1][:300] if errors else proc.stderr[-300:]
        print(f"{model:4s} {variant:30s} failed: {reason}", flush=True)
        library, variant, private, method = next(m for m in METHODS if m[1] == variant)
        return {"model": model, "library": library, "variant": variant, "private": private,
                "method": method, "error": reason}  # fmt: skip
    row = json.loads(lines[-1])
    print(
        f"{model:4s} {variant:30s} {row['examples_per_s']:10.0f} ex/s, "
        f"{row['fraction_of_peak']:.1%} of peak, load {row['load_average_1min']}",
        flush=True,
    )
    return row


def main() -> None:
    """Run every method in a subprocess, print a Markdown table, and write the JSON."""
    from _common import print_table, write_results

    best: dict[tuple[str, str], dict] = {}
    for r in range(ROUNDS):
        for model in MODELS:
            for _, variant, _, _ in METHODS:
                if r > 0 and variant in SLOW:
                    continue
                row = _run(model, variant)
                key = (model, variant)
                old = best.get(key, {})
                row["runs"] = old.get("runs", 0) + 1
                if row.get("examples_per_s", 0) >= old.get("examples_per_s", 0):
                    best[key] = row
                else:
                    old["runs"] = row["runs"]
    rows = [best[(model, m[1])] for model in MODELS for m in METHODS]
    for model in MODELS:
        base = best[(model, "non-private")]["examples_per_s"]
        for r in rows:
            if r["model"] == model and "examples_per_s" in r:
                r["ratio_to_nonprivate"] = base / r["examples_per_s"]
    meta = {
        "batch_size": BATCH,
        "seconds_per_run": SECONDS,
        "rounds": ROUNDS,
        "slow_methods_run_once": list(SLOW),
        "peak_matmul": f"max of float32 {MATMUL_N}^3 and the step's largest GEMM (tf.matmul), "
        "best of 2 s / 1 s, timed in each worker right after the step",
        "flops": "matmul/conv FLOPs of forward + backward (+ per-example gradients and norms)",
        "ratio": "non-private examples/s over the method's (2.0 = twice as slow)",
    }
    path = write_results("dpsgd_speed", rows, meta, full=True)  # always full size
    print()
    print_table(
        [r for r in rows if "examples_per_s" in r],
        [
            "model",
            "method",
            "examples_per_s",
            "ratio_to_nonprivate",
            "fraction_of_peak",
            "peak_rss_mb",
            "load_average_1min",
        ],  # fmt: skip
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(sys.argv[2], sys.argv[3])))
    else:
        main()
