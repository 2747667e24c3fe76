"""DP-SGD step time: non-private vs labkit vs TF Privacy's fastest, interleaved in one process.

Usage: LABKIT_FULL=1 nice -n 10 uv run python benchmarks/dpsgd_speed.py   (5-30 min, by load)
       (without LABKIT_FULL: a quick run, fewer and shorter rounds, results/dpsgd_speed_quick.json)

Measured honestly on a shared machine: all methods compared on one model run in one process
(one subprocess per model), interleaved. Each round times a block of steps of every method
(about BLOCK_SECONDS each, the order reversed every other round: ABBA), and a method's
``ratio_to_nonprivate`` is the median over rounds of (its step time / the non-private step time
of the same round): both numbers of a pair saw the same load. The 1-minute load average is
recorded before and after. The non-private baseline runs the same compiled path as labkit's
step (one ``tf.function`` call: forward, backward, SGD update).

Models: the MLP (784-128-10) and the chapter's tanh CNN on MNIST batches of 256, and the
character GRU LM of chapter 08 (Embedding -> GRU -> Dense, one label per position; labkit
``method='ghost-recurrent'``). TF Privacy's fastest optimizer in earlier runs (``DPSequential``,
fast clipping for Dense; 50-1000x slower ones dropped) stays in the table for MLP and CNN; it
has no fast rule for GRU in 0.9.0. ``clip-only`` (labkit with noise_multiplier=0) separates the
cost of clipping from the cost of drawing noise, and ``noise-only`` times ``add_noise`` alone
(one Gaussian per parameter per step), to show what stands in the way of a goal.

Rows keep the earlier keys (``examples_per_s``, ``ratio_to_nonprivate``, ``peak_rss_mb``,
``fraction_of_peak``, ...) and add ``ratio_rounds``, ``ratio_min``/``ratio_max``,
``cpu_ratio_to_nonprivate`` (the same median over process CPU time, less sensitive to other
jobs), ``load_before``/``load_after`` and ``interleaved``. ``peak_rss_mb`` is the process's peak
resident memory right after the method's warm-up (methods warm up one after another, the
non-private first, so it grows along a model's rows: a method's own cost is its increase).
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

from _common import interleaved_rounds, matmul_gflops  # noqa: E402

import labkit as lk  # noqa: E402

BATCH = 256
ROUNDS = lk.scale(2, 16)
BLOCK_SECONDS = lk.scale(0.3, 0.75)  # short blocks, many rounds: a pair sees the same load
MODELS = ("mlp", "cnn", "gru_lm")
LM = dict(seq_len=lk.scale(32, 48), units=lk.scale(48, 256))  # chapter 08's LM (full: 230k)
MATMUL_N = 1024
GOALS = {"mlp": 1.3, "cnn": 1.3, "gru_lm": 2.0}  # the goals on ratio_to_nonprivate
# (library, variant, private, display method, models it runs on)
METHODS = (
    ("keras", "non-private", False, "non-private", MODELS),
    ("tf-privacy", "DPSequential", True, "tfp DPSequential", ("mlp", "cnn")),
    ("labkit", "ghost", True, "labkit ghost", MODELS),
    ("labkit", "clip-only", False, "labkit ghost, clipping only (noise_multiplier=0)", MODELS),
    ("labkit", "vectorized", True, "labkit vectorized", ("mlp", "cnn")),
    ("labkit", "noise-only", False, "labkit add_noise alone (one step's noise)", MODELS),
)


def _build(model: str):
    if model == "mlp":
        return lk.models.mlp((28, 28), 10, hidden=(128,))  # 784-128-10
    if model == "cnn":
        return lk.dp.dp_cnn((28, 28), 10)  # the chapter's small CNN (Tramer & Boneh 2021)
    return lk.models.build_char_lm(LM["seq_len"], units=LM["units"], seed=0)


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


def _data(model_name: str):
    import numpy as np

    if model_name == "gru_lm":
        rng = np.random.default_rng(0)
        vocab = len(lk.data.text.VOCAB)
        x = rng.integers(0, vocab, (BATCH * 8, LM["seq_len"])).astype(np.float32)
        y = rng.integers(0, vocab, (BATCH * 8, LM["seq_len"]))
    else:
        ds = lk.data.load_mnist()
        x, y = ds.x_train[: BATCH * 8], ds.y_train[: BATCH * 8]
    return [(x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]) for i in range(8)]


def _make_step(model_name: str, variant: str):
    """Return (step(x, y), model) for one method on a fresh copy of the model."""
    import tensorflow as tf

    clip, sigma, lr = 1.0, 1.0, 0.1
    per_example = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )
    model = _build(model_name)
    if variant == "non-private":
        opt = tf.keras.optimizers.SGD(lr)

        @tf.function(reduce_retracing=True)  # the same compiled path as labkit's one-call step
        def train(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(per_example(yb, model(xb, training=True))) / BATCH
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        return train, model
    if variant == "DPSequential":
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
        return model.train_on_batch, model
    if variant == "noise-only":  # what drawing one step's Gaussian noise costs by itself
        dp = lk.dp.DPSGD(model, clip, sigma, lr, method="vectorized")
        zeros = [tf.zeros_like(v) for v in model.trainable_variables]
        return (lambda xb, yb: dp.add_noise(zeros)[0].numpy()), model
    # Noise from the default, cryptographically seeded source: what a user gets.
    method = "ghost-recurrent" if model_name == "gru_lm" else "ghost"
    method = "vectorized" if variant == "vectorized" else method
    dp = lk.dp.DPSGD(
        model,
        clip,
        0.0 if variant == "clip-only" else sigma,
        lr,
        method=method,
        jit_compile=variant == "vectorized",
    )
    return (lambda xb, yb: dp.step(xb, yb, float(BATCH), BATCH)), model


def _block(step, model, batches, seconds: float) -> tuple[float, float]:
    """Run ``step`` for about ``seconds`` (at least one step); return (wall, CPU) s per step.

    CPU time (all of the process's threads) is less sensitive to other jobs than wall time
    (it does not count waiting for a core), so its ratios are recorded beside the wall ones.
    """
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while steps == 0 or time.perf_counter() - start < seconds:
        step(*batches[steps % len(batches)])
        steps += 1
    model.trainable_variables[0].numpy()  # wait for the last step
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def _worker(model_name: str) -> list[dict]:
    """Time every method on one model, interleaved; return their rows."""
    import numpy as np
    import tensorflow as tf

    lk.config.quiet_tensorflow()
    # Seeds without lk.set_seed's op determinism: XLA has no deterministic max-pooling gradient,
    # and speed needs no bit-exactness.
    tf.keras.utils.set_random_seed(0)
    batches = _data(model_name)
    methods = [m for m in METHODS if model_name in m[4]]
    steps, models, rss, extra = {}, {}, {}, {}
    for _, variant, *_ in methods:
        steps[variant], models[variant] = _make_step(model_name, variant)
        for i in range(2):  # warm-up: tracing and compilation
            steps[variant](*batches[i])
        rss[variant] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if variant == "DPSequential":
            # 0.9.0 registers Dense and Embedding only: a Conv2D model falls back to slow clipping.
            extra[variant] = {
                "fast_clipping_used": bool(models[variant]._enable_fast_peg_computation)
            }
    blocks = {  # ABBA rounds of one block per method (benchmarks/_common.py)
        v: (lambda v=v: _block(steps[v], models[v], batches, BLOCK_SECONDS)) for _, v, *_ in methods
    }
    run = interleaved_rounds(blocks, ROUNDS, warmup=False, log=lambda s: print(s, file=sys.stderr))
    load_before, load_after = run["load_before"], run["load_after"]
    times = {v: [wall for wall, _ in r] for v, r in run["results"].items()}
    cpu_times = {v: [cpu for _, cpu in r] for v, r in run["results"].items()}
    base = np.array(times["non-private"])
    cpu_base = np.array(cpu_times["non-private"])
    big = matmul_gflops(MATMUL_N, MATMUL_N, MATMUL_N, seconds=2.0)
    rows = []
    for library, variant, private, display, _ in methods:
        t = np.array(times[variant])
        ratios = t / base
        seconds = float(np.median(t))
        row = {
            "model": model_name,
            "library": library,
            "variant": variant,
            "private": private,
            "method": display,
            "batch_size": BATCH,
            "examples_per_s": BATCH / seconds,
            "seconds_per_step": seconds,
            "ratio_to_nonprivate": float(np.median(ratios)),
            "ratio_rounds": [round(float(x), 4) for x in ratios],
            "ratio_min": float(ratios.min()),
            "cpu_seconds_per_step": float(np.median(cpu_times[variant])),
            "cpu_ratio_to_nonprivate": float(np.median(np.array(cpu_times[variant]) / cpu_base)),
            "ratio_max": float(ratios.max()),
            "rounds": ROUNDS,
            "interleaved": True,
            "peak_rss_mb": rss[variant],
            "load_before": load_before,
            "load_after": load_after,
            "load_average_1min": load_after,
            **extra.get(variant, {}),
        }
        if model_name != "gru_lm":
            flops, biggest = step_flops(
                models["non-private"], BATCH, private or variant == "clip-only"
            )
            own = matmul_gflops(*biggest, seconds=0.5)
            peak = max(big, own)  # the best matmul throughput seen, under the same load
            achieved = flops / seconds / 1e9
            row.update(
                flops_per_step=flops,
                achieved_gflops=achieved,
                peak_gflops=peak,
                fraction_of_peak=achieved / peak,
                large_matmul_gflops=big,
                largest_gemm=list(biggest),
                largest_gemm_gflops=own,
            )
        if private and library == "labkit" and variant == "ghost":
            row["goal_ratio"] = GOALS[model_name]
            row["goal_met"] = row["ratio_to_nonprivate"] <= GOALS[model_name]
        rows.append(row)
    return rows


def _run(model: str) -> list[dict]:
    env = dict(os.environ, LABKIT_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", model],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    if proc.returncode != 0 or not lines:
        errors = [ln.strip() for ln in proc.stderr.splitlines() if "Error" in ln]
        reason = errors[-1][:300] if errors else proc.stderr[-300:]
        print(f"{model:6s} failed: {reason}", flush=True)
        return [{"model": model, "library": lib, "variant": v, "private": p, "method": d,
                 "error": reason} for lib, v, p, d, ms in METHODS if model in ms]  # fmt: skip
    rows = json.loads(lines[-1])
    for row in rows:
        print(
            f"{model:6s} {row['variant']:14s} {row['seconds_per_step'] * 1e3:9.2f} ms/step, "
            f"{row['ratio_to_nonprivate']:7.2f}x (rounds {row['ratio_min']:.2f}-"
            f"{row['ratio_max']:.2f}), load {row['load_before']} -> {row['load_after']}",
            flush=True,
        )
    return rows


def main() -> None:
    """Run each model's interleaved comparison in a subprocess; print a table; write the JSON."""
    from _common import print_table, write_results

    rows = [row for model in MODELS for row in _run(model)]
    meta = {
        "batch_size": BATCH,
        "rounds": ROUNDS,
        "block_seconds": BLOCK_SECONDS,
        "lm": LM,
        "interleaved": "methods of one model in one process, ABBA rounds of about "
        f"{BLOCK_SECONDS} s each; ratio = median over rounds of method / non-private step time",
        "goals": GOALS,
        "peak_matmul": f"max of float32 {MATMUL_N}^3 and the step's largest GEMM (tf.matmul), "
        "timed in each worker after the rounds",
        "flops": "matmul/conv FLOPs of forward + backward (+ per-example gradients and norms)",
        "ratio": "method's step time over the non-private step time of the same round, median",
    }
    path = write_results("dpsgd_speed", rows, meta)
    print()
    print_table(
        [r for r in rows if "examples_per_s" in r],
        ["model", "method", "examples_per_s", "ratio_to_nonprivate", "ratio_min", "ratio_max",
         "cpu_ratio_to_nonprivate", "peak_rss_mb", "load_before", "load_after"],
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(sys.argv[2])))
    else:
        main()
