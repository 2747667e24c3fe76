"""Speed of labkit.fl's FedAvg rounds against a naive per-client ``model.fit`` loop, side by side.

Both do the same work: the 2NN on MNIST, 100 IID clients, C = 0.1, E = 1, B = 10, the same
clients sampled in the same rounds, SGD with the same learning rate, weighted averaging.
The naive loop is what most tutorials write: ``set_weights`` + ``model.fit`` + ``get_weights``
on one compiled Keras model for every client. Writes ``benchmarks/results/fedavg_speed.json``.

Usage: LABKIT_FULL=1 uv run python benchmarks/fedavg_speed.py   (about two minutes, 5 x 10 rounds)
The recorded JSON comes from LABKIT_FULL=1; without it, 3 x 5 rounds write
fedavg_speed_quick.json. On a shared machine the ratio moves with the load: the JSON keeps every
repeat, the best-of ("speedup") and the median ("speedup_median").
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import dense_training_flops, peak_matmul_gflops, print_table, write_results

import labkit as lk

NUM_CLIENTS, FRACTION, EPOCHS, BATCH, LR = 100, 0.1, 1, 10, 0.1


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


def main() -> None:
    os.environ.setdefault("LABKIT_PROGRESS", "0")
    lk.config.quiet_tensorflow()
    load_start = round(os.getloadavg()[0], 2)
    num_rounds, repeats = lk.scale(5, 10), lk.scale(3, 5)
    ds = lk.load_mnist()
    parts = lk.data.partition_iid(ds.y_train, NUM_CLIENTS, seed=0)
    clients = lk.fl.client_datasets(ds.x_train, ds.y_train, parts)

    # Both sides: one warm-up round (traces / builds the train functions), then `repeats`
    # alternating timings of the same rounds; the minimum of each side is the least-disturbed
    # measurement on a shared machine (as timeit recommends), the median is recorded too.
    model = lk.build_model("2nn", ds.input_shape, 10, seed=0)
    kwargs = dict(client_fraction=FRACTION, local_epochs=EPOCHS, batch_size=BATCH, learning_rate=LR)
    naive = lk.models.compile_model(lk.build_model("2nn", ds.input_shape, 10, seed=0), LR)
    initial = model.get_weights()
    lk.fl.fedavg(model, clients, 1, seed=1, **kwargs)
    naive_rounds(naive, clients, 1, seed=1)
    fast_times, slow_times = [], []
    for _ in range(repeats):
        model.set_weights(initial)  # both sides start every repeat from the same weights
        naive.set_weights(initial)
        start = time.perf_counter()
        lk.fl.fedavg(model, clients, num_rounds, seed=0, **kwargs)
        fast_times.append((time.perf_counter() - start) / num_rounds)
        start = time.perf_counter()
        slow_w = naive_rounds(naive, clients, num_rounds, seed=0)
        slow_times.append((time.perf_counter() - start) / num_rounds)
    naive.set_weights(slow_w)
    fast, slow = min(fast_times), min(slow_times)
    fast_acc = lk.models.evaluate(model, ds.x_test, ds.y_test)[1]
    slow_acc = lk.models.evaluate(naive, ds.x_test, ds.y_test)[1]

    # Distance to the limit: the round's matmul work over the machine's measured peak rate.
    m = lk.fl.num_sampled_clients(NUM_CLIENTS, FRACTION)
    examples = sum(len(clients[k][1]) for k in range(m)) * EPOCHS  # IID: equal client sizes
    flops = dense_training_flops(model, examples)
    peak = peak_matmul_gflops()
    rows = []
    for name, times, acc in (("naive", slow_times, slow_acc), ("labkit", fast_times, fast_acc)):
        best = min(times)
        rows.append(
            {
                "implementation": name,
                "method": "per-client model.fit" if name == "naive" else "labkit.fl.fedavg",
                "seconds_per_round": best,
                "seconds_per_round_median": float(np.median(times)),
                "seconds_per_round_each_repeat": times,
                "speedup_vs_naive": min(slow_times) / best,
                "test_accuracy": acc,
                "flops_per_round": flops,
                "gflops_per_s": flops / best / 1e9,
                "fraction_of_peak": flops / best / 1e9 / peak,
                "floor_seconds_per_round": flops / peak / 1e9,
            }
        )
    meta = {
        "model": "2nn",
        "num_clients": NUM_CLIENTS,
        "clients_per_round": m,
        "local_epochs": EPOCHS,
        "batch_size": BATCH,
        "learning_rate": LR,
        "num_rounds_timed": num_rounds,
        "repeats": repeats,
        "speedup": slow / fast,
        "speedup_median": float(np.median(slow_times) / np.median(fast_times)),
        "peak_matmul_gflops": peak,
        "load_average_1min_start": load_start,
        "load_average_1min_end": round(os.getloadavg()[0], 2),
    }
    path = write_results("fedavg_speed", rows, meta)
    print_table(rows, ["method", "seconds_per_round", "speedup_vs_naive", "fraction_of_peak"])
    print(f"\nspeedup: {slow / fast:.1f}x (best of {repeats} x {num_rounds} rounds); peak matmul "
          f"{peak:.0f} GFLOP/s; wrote {path.name}")  # fmt: skip


if __name__ == "__main__":
    main()
