"""Opt-in worker processes for encryption and decryption; nothing starts at import.

``workers=1`` (the default everywhere) runs inline. An integer > 1 starts a pool for one call
and closes it at the end; a ``Workers`` context keeps one pool across calls (a benchmark, a
training run) and closes it on exit. Tasks carry the encryptor or key (pickled small: a DJN
table is rebuilt lazily), and each worker keeps the last few by ``cache_key``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from labkit._checks import ParameterError, check_int
from labkit.config import progress

__all__ = ["Workers", "map_chunks", "check_workers"]

_BAR_MIN_ITEMS = 500  # below this a loop takes about a second or less at 2048 bits
_CACHE: dict = {}  # in a worker: cache_key -> encryptor or decryptor


class Workers:
    """A pool of worker processes for ``encrypt_packed``, ``decrypt_vector`` and the aggregator.

    Use as a context manager: ``with lk.he.Workers(2) as pool: ... workers=pool ...``; the pool
    starts on first use and is closed on exit (or by ``close()``). Workers are forked: they
    only run gmpy2 arithmetic, so they need nothing from the parent beyond labkit.he.
    """

    def __init__(self, processes: int = 2):
        """Prepare (but do not yet start) a pool of ``processes`` worker processes."""
        self.processes = check_int("processes", processes, 1)
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._executor = ProcessPoolExecutor(self.processes, ctx)
        return self._executor

    def map(self, task: str, obj, items: list) -> list:
        """Run ``task`` ('encrypt' or 'decrypt') over chunks of ``items`` with ``obj``."""
        chunk = -(-len(items) // (4 * self.processes))
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        jobs = [(task, obj, part) for part in chunks]
        return [x for part in self._pool().map(_run, jobs) for x in part]

    def close(self) -> None:
        """Shut the worker processes down (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workers({self.processes})"


def _run(job) -> list[int]:
    task, obj, items = job
    key = obj.cache_key
    if key not in _CACHE:
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = obj
    return _apply(task, _CACHE[key], items)


def _apply(task: str, obj, items: list) -> list[int]:
    if task == "encrypt":
        return [int(obj.raw_encrypt(m)) for m in items]
    return obj.raw_decrypt_many(items)


def map_chunks(workers, task: str, obj, items: list, desc: str = "") -> list[int]:
    """Apply ``task`` to ``items`` inline (workers=1), in a one-call pool, or in a ``Workers``."""
    if isinstance(workers, Workers):
        pool, own = workers, False
    else:
        n = check_int("workers", workers, 1)
        if n == 1 or len(items) < 2 * n:
            return _inline(task, obj, items, desc)
        pool, own = Workers(n), True
    if pool.processes == 1 or len(items) < 2 * pool.processes:
        return _inline(task, obj, items, desc)
    try:
        return pool.map(task, obj, items)
    finally:
        if own:
            pool.close()


def _inline(task: str, obj, items: list, desc: str) -> list[int]:
    if task == "decrypt":
        return obj.raw_decrypt_many(items)
    bar = progress(items, desc=desc, disable=len(items) < _BAR_MIN_ITEMS)
    return [int(obj.raw_encrypt(m)) for m in bar]


def check_workers(workers) -> int | Workers:
    """Return ``workers`` if it is a ``Workers`` pool or an integer >= 1."""
    if isinstance(workers, Workers):
        return workers
    if isinstance(workers, bool):
        raise ParameterError("workers", workers, "an integer >= 1 or a labkit.he.Workers pool")
    return check_int("workers", workers, 1)
