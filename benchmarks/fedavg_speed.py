"""Speed of labkit.fl's FedAvg rounds against a naive per-client ``model.fit`` loop, interleaved.

Both do the same work: the 2NN on MNIST, 100 IID clients, C = 0.1, E = 1, B = 10, the same
clients sampled in the same rounds, SGD with the same learning rate, weighted averaging.
The naive loop is what most tutorials write: ``set_weights`` + ``model.fit`` + ``get_weights``
on one compiled Keras model for every client. Writes ``benchmarks/results/fedavg_speed.json``.

Usage: LABKIT_FULL=1 nice -n 10 uv run python benchmarks/fedavg_speed.py   (5-10 minutes)
Without LABKIT_FULL, fewer and shorter rounds write fedavg_speed_quick.json.

Measured honestly on a shared machine (benchmarks/_common.interleaved_rounds): in one process,
each ABBA round times a block of ``num_rounds_timed`` FedAvg rounds of each side, from the same
weights with the same seed, plus the peak matmul rate; ``speedup`` is the median over rounds of
(naive / labkit seconds per FedAvg round of the same round), ``fraction_of_peak`` the median
over rounds of (labkit's matmul FLOP rate / the peak measured in the same round). The 1-minute
load average is recorded before and after.

What bounds ``fraction_of_peak``: SGD at B = 10 is a chain of small matmuls (10 rows per step,
each step waiting for the last). ``shape_peak_gflops`` is the best rate this machine reaches on
exactly the round's GEMM shapes (every layer's forward, input- and weight-gradient matmul of a
B-row step, batched over the round's clients as labkit runs them, timed in a loop of dependent
steps, with and without XLA, in every ABBA round), and ``fraction_of_shape_peak`` the round
against it.
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import (
    dense_training_flops,
    interleaved_rounds,
    median_ratio,
    peak_matmul_gflops,
    print_table,
    write_results,
)

import labkit as lk

NUM_CLIENTS, FRACTION, EPOCHS, BATCH, LR = 100, 0.1, 1, 10, 0.1
ROUNDS = lk.scale(2, 6)  # ABBA rounds
NUM_ROUNDS = lk.scale(3, 10)  # FedAvg rounds per timed block
PEAK_N = 2048  # the peak matmul's size (peak_matmul_gflops' default)


def naive_rounds(model, clients, num_rounds: int, seed: int) -> list[np.ndarray]:
    """FedAvg written the usual way: one ``model.fit`` per client per round."""
    rng = np.random.default_rng(seed)
    global_w = model.get_weights()
    m = lk.fl.num_sampled_clients(len(clients), FRACTION)
    for _ in range(num_rounds):
        chosen = np.sort(rng.choice(len(clients), size=m, replace=False))
        new, counts = [], []
        for k in chosen:
            x, y = clients[k]
            model.set_weights(global_w)
            model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0)
            new.append(model.get_weights())
            counts.append(len(x))
        p = np.asarray(counts, dtype=np.float64) / sum(counts)
        global_w = [
            sum(pk * w[i] for pk, w in zip(p, new, strict=True)).astype(np.float32)
            for i in range(len(global_w))
        ]
    return global_w


def round_gemms(model, batch: int) -> list[tuple[int, int, int]]:
    """The (m, k, n) GEMMs of one SGD step on ``batch`` examples, as dense_training_flops counts.

    Per Dense layer with an (i x o) kernel: forward (B x i)(i x o), weight gradient
    (i x B)(B x o), input gradient (B x o)(o x i) except at the first layer.
    """
    kernels = [v for v in model.trainable_variables if len(v.shape) == 2]
    out = []
    for j, kern in enumerate(kernels):
        i, o = int(kern.shape[0]), int(kern.shape[1])
        out += [(batch, i, o), (i, batch, o)] + ([(batch, o, i)] if j else [])
    return out


def gemm_chain(clients: int, m: int, k: int, n: int, jit: bool, steps: int):
    """Return a no-argument callable running ``steps`` dependent batched matmuls.

    (clients x m x k) @ (clients x k x n) in a ``tf.while_loop`` of one ``tf.function`` whose
    every step's input depends on the last step's output (as SGD steps do), so no step can be
    hoisted or run ahead of its turn.
    """
    import tensorflow as tf

    a = tf.random.normal([clients, m, k])
    b = tf.random.normal([clients, k, n])

    @tf.function(jit_compile=jit)
    def chain(a, b):
        def body(i, s):
            out = tf.matmul(a + s, b)
            return i + 1, out[0, 0, 0] * 1e-30  # a dependent, numerically negligible carry

        return tf.while_loop(lambda i, s: i < steps, body, (0, tf.constant(0.0)))[1]

    chain(a, b).numpy()  # trace and compile once
    return lambda: chain(a, b).numpy()


def shape_peak_block(model, clients: int, batch: int, repeats: int = 3):
    """Return a callable timing the round's own GEMM shapes: per shape best of TF and XLA.

    Each call returns ``{"gflops": combined, "shapes": [...]}``; the combined rate is
    FLOP-weighted (the time the round's matmuls would take, each at its shape's best rate):
    total FLOPs / sum(FLOPs_shape / rate_shape).
    """
    chains = []
    for m, k, n in round_gemms(model, batch):
        flops = 2.0 * clients * m * k * n
        steps = max(20, int(3e8 / flops))  # ~0.3 GFLOP per timing
        runs = {jit: gemm_chain(clients, m, k, n, jit, steps) for jit in (False, True)}
        chains.append(((m, k, n), flops, steps, runs))

    def block() -> dict:
        shapes, floor, total = [], 0.0, 0.0
        for (m, k, n), flops, steps, runs in chains:  # flops: one step's, the shape's weight
            rates = {}
            for jit, run in runs.items():
                best = float("inf")
                for _ in range(repeats):
                    start = time.perf_counter()
                    run()
                    best = min(best, time.perf_counter() - start)
                rates[jit] = flops * steps / best / 1e9
            total += flops
            floor += flops / max(rates.values())
            shapes.append({"m": m, "k": k, "n": n, "gflops_tf": rates[False],
                           "gflops_xla": rates[True]})  # fmt: skip
        return {"gflops": total / floor, "shapes": shapes}

    return block


def main() -> None:
    os.environ.setdefault("LABKIT_PROGRESS", "0")
    lk.config.quiet_tensorflow()
    ds = lk.load_mnist()
    parts = lk.data.partition_iid(ds.y_train, NUM_CLIENTS, seed=0)
    clients = lk.fl.client_datasets(ds.x_train, ds.y_train, parts)

    model = lk.build_model("2nn", ds.input_shape, 10, seed=0)
    kwargs = dict(client_fraction=FRACTION, local_epochs=EPOCHS, batch_size=BATCH, learning_rate=LR)
    naive = lk.models.compile_model(lk.build_model("2nn", ds.input_shape, 10, seed=0), LR)
    initial = model.get_weights()
    final = {}

    def labkit_block() -> tuple[float, float]:
        model.set_weights(initial)  # every block: the same weights, seed and clients
        start, cpu = time.perf_counter(), time.process_time()
        lk.fl.fedavg(model, clients, NUM_ROUNDS, seed=0, **kwargs)
        return (time.perf_counter() - start) / NUM_ROUNDS, (time.process_time() - cpu) / NUM_ROUNDS

    def naive_block() -> tuple[float, float]:
        naive.set_weights(initial)
        start, cpu = time.perf_counter(), time.process_time()
        final["naive"] = naive_rounds(naive, clients, NUM_ROUNDS, seed=0)
        return (time.perf_counter() - start) / NUM_ROUNDS, (time.process_time() - cpu) / NUM_ROUNDS

    def peak_block() -> tuple[float, float]:
        """The peak (GFLOP/s, best of 5) and its FLOPs per CPU-second (all 6 matmuls)."""
        cpu = time.process_time()
        gflops = peak_matmul_gflops(PEAK_N, repeats=5)
        return gflops, 6 * 2 * PEAK_N**3 / (time.process_time() - cpu) / 1e9

    # Warm-up: one FedAvg round each (traces, builds the train functions); then ABBA rounds.
    lk.fl.fedavg(model, clients, 1, seed=1, **kwargs)
    naive_rounds(naive, clients, 1, seed=1)
    m = lk.fl.num_sampled_clients(NUM_CLIENTS, FRACTION)
    blocks = {
        "labkit": labkit_block,
        "naive": naive_block,
        "peak": peak_block,
        "shape_peak": shape_peak_block(model, m, BATCH),
    }
    run = interleaved_rounds(blocks, ROUNDS, warmup=False)
    (fast_times, fast_cpu), (slow_times, slow_cpu) = (
        [list(x) for x in zip(*run["results"][name], strict=True)] for name in ("labkit", "naive")
    )
    peaks, peaks_cpu = [list(x) for x in zip(*run["results"]["peak"], strict=True)]
    naive.set_weights(final["naive"])
    fast_acc = lk.models.evaluate(model, ds.x_test, ds.y_test)[1]
    slow_acc = lk.models.evaluate(naive, ds.x_test, ds.y_test)[1]

    # Distance to the limit: the round's matmul work over the peak rates of the same ABBA round.
    examples = sum(len(clients[k][1]) for k in range(m)) * EPOCHS  # IID: equal client sizes
    flops = dense_training_flops(model, examples)
    own = run["results"]["shape_peak"]
    shape_peaks = [r["gflops"] for r in own]
    load_end = round(os.getloadavg()[0], 2)
    speedup, ratios = median_ratio(slow_times, fast_times)
    peak = float(np.median(peaks))
    rows = []
    sides = (("naive", slow_times, slow_cpu, slow_acc), ("labkit", fast_times, fast_cpu, fast_acc))
    for name, times, cpu, acc in sides:
        seconds = float(np.median(times))
        per_cpu = [flops / c / 1e9 / p for c, p in zip(cpu, peaks_cpu, strict=True)]
        fractions = [flops / t / 1e9 / p for t, p in zip(times, peaks, strict=True)]
        shaped = [flops / t / 1e9 / p for t, p in zip(times, shape_peaks, strict=True)]
        rows.append(
            {
                "implementation": name,
                "method": "per-client model.fit" if name == "naive" else "labkit.fl.fedavg",
                "seconds_per_round": seconds,
                "seconds_per_round_median": seconds,
                "seconds_per_round_min": min(times),
                "seconds_per_round_each_repeat": times,
                "speedup_vs_naive": 1.0 if name == "naive" else speedup,
                "test_accuracy": acc,
                "flops_per_round": flops,
                "gflops_per_s": flops / seconds / 1e9,
                "fraction_of_peak": float(np.median(fractions)),
                "fraction_of_peak_each_round": [round(f, 4) for f in fractions],
                "cpu_seconds_per_round": float(np.median(cpu)),
                "gflops_per_cpu_s": flops / float(np.median(cpu)) / 1e9,
                "fraction_of_peak_cpu": float(np.median(per_cpu)),
                "fraction_of_peak_cpu_each_round": [round(f, 4) for f in per_cpu],
                "floor_seconds_per_round": flops / peak / 1e9,
                "shape_peak_gflops": float(np.median(shape_peaks)),
                "fraction_of_shape_peak": float(np.median(shaped)),
                "fraction_of_shape_peak_each_round": [round(f, 4) for f in shaped],
                "shape_floor_seconds_per_round": flops / float(np.median(shape_peaks)) / 1e9,
                "interleaved": True,
                "load_before": run["load_before"],
                "load_after": run["load_after"],
            }
        )
    meta = {
        "model": "2nn",
        "num_clients": NUM_CLIENTS,
        "clients_per_round": m,
        "local_epochs": EPOCHS,
        "batch_size": BATCH,
        "learning_rate": LR,
        "num_rounds_timed": NUM_ROUNDS,
        "repeats": ROUNDS,
        "speedup": speedup,
        "speedup_median": float(np.median(slow_times) / np.median(fast_times)),
        "speedup_best": min(slow_times) / min(fast_times),
        "ratio_rounds": ratios,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "interleaved": f"labkit, naive and the peak matmul in one process, {ROUNDS} ABBA rounds; "
        f"each block {NUM_ROUNDS} FedAvg rounds from the same weights and seed. speedup = median "
        "over rounds of naive / labkit seconds per FedAvg round; speedup_median = ratio of the "
        "medians; speedup_best = ratio of the minima",
        "peak_matmul_gflops": peak,
        "peak_matmul_gflops_each_round": peaks,
        "peak_matmul_gflops_per_cpu_s": float(np.median(peaks_cpu)),
        "peak_matmul_gflops_per_cpu_s_each_round": peaks_cpu,
        "fraction_of_peak_cpu": "FLOPs per process CPU-second (all threads) of the round over "
        "those of the peak matmul in the same round: less sensitive to other jobs than wall "
        "time (waiting for a core is not counted), as dpsgd_speed's cpu ratios",
        "peak_matmul": f"float32 {PEAK_N}^3 tf.matmul, best of 5, measured in every ABBA round; "
        "fraction_of_peak = median over rounds of the round's FLOP rate / that round's peak",
        "shape_peak_gflops": float(np.median(shape_peaks)),
        "shape_peak_gflops_each_round": shape_peaks,
        "shape_peak_gemms": own[int(np.argsort(shape_peaks)[len(shape_peaks) // 2])]["shapes"],
        "shape_peak": f"the round's GEMMs of one B={BATCH} step (forward, weight and input "
        f"gradients per layer), batched over {m} clients, dependent steps in one tf.while_loop, "
        "best of TF and XLA per shape, combined FLOP-weighted; measured in every ABBA round; "
        "fraction_of_shape_peak = median over rounds of the round's FLOP rate / that round's",
        "load_average_1min_start": run["load_before"],
        "load_average_1min_end": load_end,
    }
    path = write_results("fedavg_speed", rows, meta)
    print_table(rows, ["method", "seconds_per_round", "speedup_vs_naive", "fraction_of_peak",
                       "fraction_of_peak_cpu", "fraction_of_shape_peak"])  # fmt: skip
    print(f"\nspeedup: {speedup:.1f}x (median of {ROUNDS} interleaved rounds, each "
          f"{NUM_ROUNDS} FedAvg rounds; {min(ratios):.1f}-{max(ratios):.1f}); peak matmul "
          f"{peak:.0f} GFLOP/s, the round's shapes {np.median(shape_peaks):.0f} GFLOP/s; load "
          f"{run['load_before']} -> {load_end}; wrote {path.name}")  # fmt: skip


if __name__ == "__main__":
    main()
