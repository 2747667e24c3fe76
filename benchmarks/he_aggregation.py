"""Encrypted aggregation of updates: per-value phe vs labkit packing (+ DJN) vs TenSEAL CKKS.

Each of ``num_clients`` parties encrypts a ``num_values`` update (floats in [-1, 1]) under one
``key_bits`` Paillier key (or one CKKS context); the server multiplies/adds the ciphertexts; the key
holder decrypts and decodes the aggregate. ``seconds_total`` is encrypt + aggregate + decrypt
(recorded separately), summed over parties as if run one after another on this machine;
one-off set-up (key generation, the DJN table, the CKKS context) is ``setup_seconds``.

CKKS is compared at the smallest parameters at 128-bit security that support additions (one
data prime holding the scale and the sum's integer part, plus the special prime TenSEAL
requires; no multiplication levels) *and* give a sum at least as precise as the exact path's
error bound: the benchmark tries candidates from small to large and keeps the first that does.
The previous setting (N = 8192, [60, 40, 40, 60], scale 2^40) is measured beside it.

Honest ratios on a shared machine: the measured configurations (labkit's DJN paths, CKKS) and
the floor kernels run interleaved in one process, every configuration once per round, the order
reversed every other round (ABBA, ``_common.interleaved_rounds``), after one unrecorded warm-up
round. A row's ``seconds_total`` and phases are those of its median round (``seconds_total_min``
the fastest); ``ratio_to_ckks`` is the median over rounds of its time over CKKS's time of the
same round, and the 1-minute load average is recorded before and after. Per-value phe at full
size would take hours, so it is timed on a sample and extrapolated (``extrapolated: true``).

Floors: ``labkit.he.aggregation_ops`` counts the modular exponentiations and multiplications a
path performs (tests/test_he_cost.py checks the count against an instrumented run); each round
also times one operation of each kind with gmpy2 alone (the key's own p - 1 and p^(s+1), n and
n^(s+1); best of 3 short batches), so ``floor_seconds`` = sum of count x time (encryption and
decryption divided by the processes used) and ``fraction_of_floor`` = the median over rounds of
row time / floor of the same round. CKKS rows have no floor (``null``): their operations are
not modular exponentiations.

Usage (``LABKIT_FULL``, the one quick/full switch of every benchmark):
    LABKIT_FULL=1 uv run python benchmarks/he_aggregation.py  # full size (he_aggregation.json)
    uv run python benchmarks/he_aggregation.py                # smoke test, ~1 minute (_quick.json)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import multiprocessing
import os
import secrets
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import gmpy2
import numpy as np
import tenseal as ts
from _common import interleaved_rounds, median_ratio, print_table, write_results

import labkit as lk

os.environ.setdefault("LABKIT_PROGRESS", "0")  # no progress bars in a logged benchmark
from labkit.he.djn import CrtDecryptor, _widest_window

TABLE = ["method", "seconds_total", "encrypt_seconds", "aggregate_seconds", "decrypt_seconds",
         "bytes_per_value", "max_abs_error", "exact", "speedup_vs_phe", "ratio_to_ckks",
         "floor_seconds", "fraction_of_floor"]  # fmt: skip
# (poly_modulus_degree, coeff_mod_bit_sizes, scale bits), smallest first; all within SEAL's
# 128-bit limits (54 bits of modulus at N = 2048, 109 at N = 4096, 218 at N = 8192).
CKKS_CANDIDATES = [
    (2048, [36, 18], 30),
    (2048, [37, 17], 31),
    (4096, [38, 20], 32),
    (4096, [40, 20], 34),
    (8192, [60, 40], 40),
]
CKKS_PREVIOUS = (8192, [60, 40, 40, 60], 40)


def make_updates(num_clients: int, num_values: int, seed: int) -> list[np.ndarray]:
    """Return seeded synthetic model updates, clipped to the packing range [-1, 1]."""
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(0.0, 0.3, num_values), -1.0, 1.0) for _ in range(num_clients)]


def phe_per_value(pk, sk, updates, sample: int, bursts: int = 3) -> dict:
    """Time phe's encrypt / add / decrypt per value on a sample (best of ``bursts``)."""
    num_clients, num_values = len(updates), updates[0].size
    cols = num_values // sample * np.arange(sample)  # spread over the vector
    t_enc = t_add = t_dec = np.inf
    for _ in range(bursts):
        t = time.perf_counter()
        enc = [[pk.encrypt(float(x[j])) for j in cols] for x in updates]  # phe: exact float
        t_enc = min(t_enc, (time.perf_counter() - t) / (num_clients * sample))
        t = time.perf_counter()
        total = enc[0]
        for row in enc[1:]:
            total = [a + b for a, b in zip(total, row, strict=True)]
        t_add = min(t_add, (time.perf_counter() - t) / ((num_clients - 1) * sample))
        t = time.perf_counter()
        dec = np.array([sk.decrypt(c) for c in total])
        t_dec = min(t_dec, (time.perf_counter() - t) / sample)
    ref = np.sum([x[cols] for x in updates], axis=0)
    split = {
        "encrypt_seconds": num_clients * num_values * t_enc,
        "aggregate_seconds": (num_clients - 1) * num_values * t_add,
        "decrypt_seconds": num_values * t_dec,
    }
    return {
        **_paillier("phe, one ciphertext per value", False, "phe", None, 1),
        "seconds_total": sum(split.values()),
        **split,
        "bytes_per_value": lk.he.ciphertext_bytes(pk),
        "max_abs_error": float(np.abs(dec - ref).max()),
        "exact": True,
        "extrapolated": True,
        "runs": bursts,
        "sample_values_per_client": sample,
        "setup_seconds": 0.0,
    }


def _paillier(method, packed, encryption, exponent_bits, processes) -> dict:
    return {"table": "aggregation", "method": method, "scheme": "paillier", "packed": packed,
            "encryption": encryption, "exponent_bits": exponent_bits,
            "processes": processes, "s": 1}  # fmt: skip


def packed_once(pk, sk, updates, spec, encryptor=None, workers=1) -> dict:
    """Encrypt every update packed, sum on the server, decrypt; check exactness against integers."""
    t0 = time.perf_counter()
    vecs = [
        lk.he.encrypt_packed(pk, x, spec, encryptor=encryptor, workers=workers) for x in updates
    ]
    t1 = time.perf_counter()
    total = lk.he.encrypted_sum(vecs)
    t2 = time.perf_counter()
    slots = lk.he.decrypt_vector(sk, total, integers=True, workers=workers)
    result = lk.he.dequantize(slots, spec, total.weight)
    t3 = time.perf_counter()
    ref_int = np.sum([lk.he.quantize(x, spec) for x in updates], axis=0)
    return {
        "seconds_total": t3 - t0,
        "encrypt_seconds": t1 - t0,
        "aggregate_seconds": t2 - t1,
        "decrypt_seconds": t3 - t2,
        "bytes_per_value": vecs[0].nbytes / updates[0].size,
        "max_abs_error": float(np.abs(result - np.sum(updates, axis=0)).max()),
        "exact": bool(np.array_equal(slots, ref_int)),
        "extrapolated": False,
        "values_per_ciphertext": spec.slots(pk, vecs[0].s),
        "ciphertexts_per_client": len(vecs[0].ciphertexts),
        "error_bound": spec.max_error(len(updates)),
    }


def phe_packed(pk, sk, updates, spec, pool, measured: int) -> dict:
    """Packing with phe's full-size r^n: run ``measured`` clients (minutes), scale to all.

    Encryption scales with the number of clients, the server's work with clients - 1; the key
    holder decrypts one aggregate whatever the number of clients. Exactness is checked on the
    measured clients' sum.
    """
    one = packed_once(pk, sk, updates[:measured], spec, workers=pool)
    k = len(updates)
    split = {
        "encrypt_seconds": one["encrypt_seconds"] * k / measured,
        "aggregate_seconds": one["aggregate_seconds"] * (k - 1) / max(measured - 1, 1),
        "decrypt_seconds": one["decrypt_seconds"],
    }
    return {
        **_paillier("labkit packed, phe's r^n encryption, 2 processes", True, "phe", None, 2),
        **one,
        **split,
        "seconds_total": sum(split.values()),
        "max_abs_error": None,  # measured on fewer clients: not comparable
        "error_bound": spec.max_error(k),
        "extrapolated": True,
        "clients_measured": measured,
        "runs": 1,
        "setup_seconds": 0.0,
    }


@contextlib.contextmanager
def quiet_stdout():
    """Silence C++ writes to fd 1 (TenSEAL prints notes for vectors longer than one ciphertext)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def ckks_context(params):
    """Return a TenSEAL CKKS context for ``(N, coeff_mod_bit_sizes, scale_bits)``."""
    n, bits, scale = params
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=n, coeff_mod_bit_sizes=bits)
    ctx.global_scale = 2**scale
    return ctx


def ckks_once(ctx, updates) -> dict:
    """Encrypt each update with CKKS, add, decrypt; error against the float64 sum."""
    with quiet_stdout():
        t0 = time.perf_counter()
        vecs = [ts.ckks_vector(ctx, x) for x in updates]
        t1 = time.perf_counter()
        total = vecs[0]
        for v in vecs[1:]:
            total = total + v
        t2 = time.perf_counter()
        result = np.array(total.decrypt())
        t3 = time.perf_counter()
    return {
        "seconds_total": t3 - t0,
        "encrypt_seconds": t1 - t0,
        "aggregate_seconds": t2 - t1,
        "decrypt_seconds": t3 - t2,
        "bytes_per_value": len(vecs[0].serialize()) / updates[0].size,
        "max_abs_error": float(np.abs(result - np.sum(updates, axis=0)).max()),
        "exact": False,
        "extrapolated": False,
    }


def ckks_row(params, which: str) -> dict:
    """Return the fields that describe a CKKS configuration."""
    n, bits, scale = params
    return {
        "table": "aggregation",
        "method": f"TenSEAL CKKS (N={n}, {bits}, scale 2^{scale})",
        "scheme": "ckks",
        "packed": True,
        "encryption": None,
        "exponent_bits": None,
        "processes": 1,
        "ckks_params": which,
        "poly_modulus_degree": n,
        "coeff_mod_bit_sizes": bits,
        "scale_bits": scale,
        "values_per_ciphertext": n // 2,
        "threads": "TenSEAL default (all cores)",
    }


def smallest_ckks(updates, bound: float) -> tuple[tuple, list[dict]]:
    """Return the first candidate whose sum error is within ``bound``, and every trial."""
    trials = []
    for params in CKKS_CANDIDATES:
        try:
            r = ckks_once(ckks_context(params), updates)
        except (ValueError, RuntimeError) as err:  # TenSEAL refuses parameters it cannot use
            trials.append({"params": params, "error": str(err)})
            continue
        trials.append({"params": params, "max_abs_error": r["max_abs_error"],
                       "bytes_per_value": r["bytes_per_value"]})  # fmt: skip
        print(f"  CKKS candidate {params}: max error {r['max_abs_error']:.2e}", flush=True)
        if r["max_abs_error"] <= bound:
            return params, trials
    raise RuntimeError(f"no CKKS candidate reached the error bound {bound:.2e}")


def key_size_sweep(key_bits_list, spec, reps: int) -> list[dict]:
    """Return per-ciphertext costs at each key size (best of 5): phe, DJN, CRT decryption."""
    rows = []
    for bits in key_bits_list:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lk.he.InsecureKeyWarning)
            t = time.perf_counter()
            pk, sk = lk.he.cached_keypair(bits, allow_insecure=True)
            keygen = time.perf_counter() - t
        encryptors = {
            "fast_encrypt_ms": lk.he.FastEncryptor(pk),
            "djn_short_encrypt_ms": lk.he.FastEncryptor(pk, 2 * lk.he.security_bits(bits)),
        }
        dec = CrtDecryptor(sk)
        m = [secrets.randbelow(pk.n) for _ in range(reps)]
        best = dict.fromkeys(["phe_encrypt_ms", *encryptors, "decrypt_ms"], np.inf)
        for fe in encryptors.values():
            fe.obfuscator()  # build the table outside the timing
        for _ in range(5):  # best of 5 short runs: robust to other load on a shared machine
            t = time.perf_counter()
            cts = [pk.raw_encrypt(x) for x in m]
            best["phe_encrypt_ms"] = min(best["phe_encrypt_ms"], (time.perf_counter() - t) / reps)
            for key, fe in encryptors.items():
                t = time.perf_counter()
                cts = [fe.raw_encrypt(x) for x in m]
                best[key] = min(best[key], (time.perf_counter() - t) / reps)
            t = time.perf_counter()
            assert dec.raw_decrypt_many(cts) == m
            best["decrypt_ms"] = min(best["decrypt_ms"], (time.perf_counter() - t) / reps)
        rows.append(
            {
                "table": "key_size_sweep",
                "method": f"{bits}-bit key",
                "scheme": "paillier",
                "key_bits": bits,
                "keygen_seconds": keygen,
                **{k: 1e3 * v for k, v in best.items()},
                "exponent_bits": encryptors["fast_encrypt_ms"].exponent_bits,
                "short_exponent_bits": encryptors["djn_short_encrypt_ms"].exponent_bits,
                "values_per_ciphertext": spec.slots(pk),
                "ciphertext_bytes": lk.he.ciphertext_bytes(pk),
            }
        )
        print(f"  sweep {bits} bits: {rows[-1]}", flush=True)
    return rows


def _kernel(job) -> int:
    """Run one batch of one kind of operation with gmpy2 alone; return how many ran."""
    how, xs, e, m = job
    if how == "mulmod":
        for a, b in itertools.pairwise(xs):
            a * b % m  # noqa: B018
        return len(xs) - 1
    if how == "powmod_list":  # what CrtDecryptor calls: one exponent, many bases
        gmpy2.powmod_base_list(xs, e, m)
    else:
        for r in xs:
            gmpy2.powmod(r, e, m)
    return len(xs)


def op_jobs(pk, sk, kinds) -> dict:
    """Return kind -> a batch job (``_kernel``) of that operation on the key's own operands.

    Exponentiations by p - 1 mod p^(s+1) (CRT decryption), r^n mod n^2 for fresh r (phe's
    obfuscator), products of random residues mod n^(s+1); each batch takes 20-60 ms.
    """
    k, n, p = pk.n.bit_length(), gmpy2.mpz(pk.n), gmpy2.mpz(sk.p)
    jobs = {}
    for kind, (op, exp_bits, mod_bits) in kinds.items():
        if op == "mulmod":
            m = n ** (mod_bits // k)
            jobs[kind] = ("mulmod", [gmpy2.mpz(secrets.randbelow(int(m))) for _ in range(3001)],
                          None, m)  # fmt: skip
        elif exp_bits == k:
            jobs[kind] = ("powmod", [gmpy2.mpz(secrets.randbelow(pk.n)) for _ in range(3)], n,
                          n * n)  # fmt: skip
        else:
            m = p ** (mod_bits // (k // 2))
            bases = [gmpy2.mpz(secrets.randbelow(int(m))) for _ in range(16)]
            jobs[kind] = ("powmod_list", bases, p - 1, m)
    return jobs


def time_kernels(jobs: dict, executor, repeats: int = 3) -> dict:
    """Return {"serial": kind -> s per op, "parallel": kind -> wall s per op on 2 processes}.

    The fastest of ``repeats`` batches each (a floor is the fastest gmpy2 does), in the same
    round as the rows it is the floor of. The parallel time runs one batch in each of two
    worker processes at once (what two cores deliver under the current load, dispatch
    included).
    """
    out = {"serial": {}, "parallel": {}}
    for kind, job in jobs.items():
        serial, parallel = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            count = _kernel(job)
            serial.append((time.perf_counter() - t) / count)
            t = time.perf_counter()
            count = sum(executor.map(_kernel, [job, job]))
            parallel.append((time.perf_counter() - t) / count)
        out["serial"][kind] = min(serial)
        out["parallel"][kind] = min(parallel)
    return out


def floor_of(ops: list[dict], each: dict, processes: int) -> dict:
    """Return the floor of ``ops`` at measured op times ``each`` (serial and parallel)."""
    return lk.he.floor_seconds(ops, each["serial"], processes,
                               parallel_seconds_each=each["parallel"])  # fmt: skip


def with_floor(row: dict, ops: list[dict], each: dict, processes: int) -> dict:
    """Add ``floor_seconds`` (and per phase), ``fraction_of_floor`` and the counted ops."""
    floor = floor_of(ops, each, processes)
    return {
        **row,
        "floor_seconds": floor["total"],
        "floor_phases": {k: floor[k] for k in ("encrypt", "aggregate", "decrypt")},
        "fraction_of_floor": row["seconds_total"] / floor["total"],
        "ops": [{k: op[k] for k in ("phase", "kind", "count")} for op in ops],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-clients", type=int, default=10)
    ap.add_argument("--num-values", type=int, default=100_000)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--precision-bits", type=int, default=20)
    ap.add_argument("--sample", type=int, default=50, help="values per client timed for phe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=None, help="interleaved rounds (full 6, quick 2)")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--phe-packed-clients", type=int, default=2, help="measured, then scaled")
    args = ap.parse_args()
    quick = not lk.is_full()  # LABKIT_FULL=1 for the recorded run
    if quick:
        args.num_values, args.sample = 5_000, 5
    args.runs = args.runs or lk.scale(2, 6)
    load_start = round(os.getloadavg()[0], 2)
    updates = make_updates(args.num_clients, args.num_values, args.seed)
    spec = lk.he.PackingSpec(-1.0, 1.0, args.precision_bits, max_summands=args.num_clients)
    t = time.perf_counter()
    pk, sk = lk.he.cached_keypair(args.key_bits)
    keygen = time.perf_counter() - t
    k = pk.n.bit_length()
    print(
        f"{args.num_clients} clients x {args.num_values} values, {k}-bit key, "
        f"{spec.precision_bits}-bit quantisation in [-1, 1], {spec.slot_bits}-bit slots, "
        f"{spec.slots(pk)} values per ciphertext; load average {load_start}",
        flush=True,
    )
    sizes = (k, args.num_values, args.num_clients)
    rows = [phe_per_value(pk, sk, updates, args.sample)]
    rows[-1]["_ops"] = lk.he.aggregation_ops(*sizes, None, "phe")
    print(f"  {rows[-1]['method']}: {rows[-1]['seconds_total']:.0f} s (extrapolated)", flush=True)

    ckks_params, ckks_trials = smallest_ckks(updates, spec.max_error(args.num_clients))
    short = 2 * lk.he.security_bits(k)
    # Damgård–Jurik s=3, not built: its floor from the counts, to show where s stops paying
    predicted = lk.he.aggregation_ops(*sizes, spec, "djn", 3, short, _widest_window(short, 4 * k))
    with lk.he.Workers(2) as pool:
        rows.append(phe_packed(pk, sk, updates, spec, pool, args.phe_packed_clients))
        rows[-1]["_ops"] = lk.he.aggregation_ops(*sizes, spec, "phe")
        print(f"  {rows[-1]['method']}: {rows[-1]['seconds_total']:.1f} s", flush=True)
        configs, ops_of = {}, {}  # name -> (fields, run function); name -> counted ops
        for bits, procs, dj in [(None, 1, 1), (short, 1, 1), (short, 2, 1), (short, 2, 2)]:
            t = time.perf_counter()
            fe = lk.he.FastEncryptor(pk, exponent_bits=bits, s=dj)
            fe.obfuscator()  # builds the fixed-base table
            setup = time.perf_counter() - t
            label = f"labkit packed + DJN {fe.exponent_bits}-bit exponent" + (
                " (2 x security level)" if bits else ""
            )
            label += ", Damgård–Jurik s=2" if dj == 2 else ""
            label += ", 2 processes" if procs == 2 else ""
            fields = {**_paillier(label, True, "djn", fe.exponent_bits, procs), "s": dj,
                      "setup_seconds": setup, "window_bits": fe.window_bits}  # fmt: skip
            w = pool if procs == 2 else 1
            configs[label] = (fields, lambda fe=fe, w=w: packed_once(pk, sk, updates, spec, fe, w))
            ops_of[label] = lk.he.aggregation_ops(*sizes, spec, "djn", dj, fe.exponent_bits,
                                                  fe.window_bits)  # fmt: skip
        for params, which in [(ckks_params, "smallest"), (CKKS_PREVIOUS, "previous")]:
            t = time.perf_counter()
            ctx = ckks_context(params)
            fields = {**ckks_row(params, which), "setup_seconds": time.perf_counter() - t}
            configs[fields["method"]] = (fields, lambda ctx=ctx: ckks_once(ctx, updates))
        all_ops = [op for r in rows for op in r["_ops"]] + predicted
        all_ops += [op for ops in ops_of.values() for op in ops]
        kinds = {op["kind"]: (op["op"], op["exponent_bits"], op["modulus_bits"]) for op in all_ops}
        jobs = op_jobs(pk, sk, kinds)
        methods = {name: run for name, (_, run) in configs.items()}
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, ctx) as kernels:  # gmpy2 alone on two processes
            methods["floor kernels"] = lambda: time_kernels(jobs, kernels)
            runs = interleaved_rounds(methods, args.runs, log=lambda m: print(m, flush=True))
    trials = runs["results"]
    each_rounds = trials.pop("floor kernels")
    each = {how: {kind: float(np.median([e[how][kind] for e in each_rounds])) for kind in kinds}
            for how in ("serial", "parallel")}  # fmt: skip
    ckks_name = next(n for n, (f, _) in configs.items() if f.get("ckks_params") == "smallest")
    ckks_times = [x["seconds_total"] for x in trials[ckks_name]]
    for name, (fields, _) in configs.items():
        times = [x["seconds_total"] for x in trials[name]]
        median_round = trials[name][int(np.argsort(times)[len(times) // 2])]
        ratio, ratio_rounds = median_ratio(times, ckks_times)
        row = {**fields, **median_round, "exact": all(x["exact"] for x in trials[name]),
               "runs": args.runs, "seconds_total_min": min(times),
               "seconds_total_rounds": [round(x, 4) for x in times],
               "ratio_to_ckks": ratio, "ratio_to_ckks_rounds": ratio_rounds,
               "interleaved": True, "load_before": runs["load_before"],
               "load_after": runs["load_after"]}  # fmt: skip
        if name in ops_of:
            row = with_floor(row, ops_of[name], each, fields["processes"])
            floors = [floor_of(ops_of[name], e, fields["processes"])["total"] for e in each_rounds]
            row["fraction_of_floor"], row["fraction_of_floor_rounds"] = median_ratio(times, floors)
        else:
            row.update(floor_seconds=None, fraction_of_floor=None)
        rows.append(row)
    for i, r in enumerate(rows):
        if "_ops" in r:  # phe rows: run once (extrapolated), floor at the median op times
            rows[i] = with_floor({k: v for k, v in r.items() if k != "_ops"}, r["_ops"], each,
                                 r["processes"])  # fmt: skip

    agg = [r for r in rows if r["table"] == "aggregation"]
    baseline = agg[0]["seconds_total"]
    ckks = next(r for r in agg if r.get("ckks_params") == "smallest")
    for r in agg:
        r["speedup_vs_phe"] = baseline / r["seconds_total"]
        r.setdefault("ratio_to_ckks", r["seconds_total"] / ckks["seconds_total"])
        r["bytes_ratio_to_ckks"] = r["bytes_per_value"] / ckks["bytes_per_value"]
    fastest = min((r for r in agg[1:] if r["exact"] and not r["extrapolated"]),
                  key=lambda r: r["seconds_total"])  # fmt: skip
    labkit_rows = [r for r in agg if r.get("floor_seconds") and r["method"].startswith("labkit")]
    s3 = floor_of(predicted, each, 2)["total"]
    reps = 20 if quick else 50
    sweep = [] if args.no_sweep else key_size_sweep([1024, 2048, 3072], spec, reps)
    meta = {
        "settings": {
            "num_clients": args.num_clients,
            "num_values": args.num_values,
            "key_bits": args.key_bits,
            "precision_bits": spec.precision_bits,
            "value_range": [spec.low, spec.high],
            "slot_bits": spec.slot_bits,
            "slot_bits_needed": math.log2(spec.max_summands * spec.levels + 1),
            "values_per_ciphertext": spec.slots(pk),
            "runs": args.runs,
            "seed": args.seed,
        },
        "keygen_seconds": keygen,
        "load_average_1min_start": load_start,
        "load_average_1min_end": round(os.getloadavg()[0], 2),
        "interleaved": "DJN rows, CKKS rows and the floor kernels in one process, ABBA rounds "
        "after a warm-up round; a row is its median round; ratios are medians of same-round "
        "pairs",
        "op_seconds": each,
        "op_seconds_rounds": each_rounds,
        "floor": "sum over counted operations (labkit.he.aggregation_ops) of count x gmpy2's "
        "time for one (op_seconds: median over rounds of the fastest of 3 batches; 'parallel' is "
        "the wall time per op with one batch in each of 2 processes at once, used for the "
        "encryption and decryption of 2-process rows); CKKS rows have none",
        "damgard_jurik_s3_predicted_floor_seconds": s3,
        "ckks_candidates": ckks_trials,
        "summary": {
            "fastest_exact_method": fastest["method"],
            "speedup_vs_phe": fastest["speedup_vs_phe"],
            "time_ratio_vs_ckks": fastest["ratio_to_ckks"],
            "bytes_ratio_vs_ckks": fastest["bytes_ratio_to_ckks"],
            "ckks_method": ckks["method"],
            "fastest_floor_seconds": fastest["floor_seconds"],
            "fastest_fraction_of_floor": fastest["fraction_of_floor"],
            "floor_ratio_vs_ckks": fastest["floor_seconds"] / ckks["seconds_total"],
            "decrypt_floor_share": fastest["floor_phases"]["decrypt"] / fastest["floor_seconds"],
            "worst_labkit_fraction_of_floor": max(r["fraction_of_floor"] for r in labkit_rows),
            "goal_fraction_of_floor": 1.25,
            "goal_time_ratio_vs_ckks": 3.0,
        },
    }
    s_ = meta["summary"]
    s_["goal_fraction_met"] = s_["worst_labkit_fraction_of_floor"] <= 1.25
    s_["goal_ratio_met"] = s_["time_ratio_vs_ckks"] <= 3.0
    path = write_results("he_aggregation", rows + sweep, meta)  # quick: he_aggregation_quick
    print()
    print_table(agg, TABLE)
    print(
        f"\nfastest exact path: {s_['fastest_exact_method']}: {s_['speedup_vs_phe']:.0f}x "
        f"per-value phe; {s_['time_ratio_vs_ckks']:.2f}x the time and "
        f"{s_['bytes_ratio_vs_ckks']:.3f}x the bytes per value of {s_['ckks_method']}; its floor "
        f"is {s_['floor_ratio_vs_ckks']:.2f}x CKKS's time ({s_['decrypt_floor_share']:.0%} of it "
        f"decryption); worst labkit fraction of floor {s_['worst_labkit_fraction_of_floor']:.2f}"
        f"\nwrote {path}"
    )


if __name__ == "__main__":
    main()
