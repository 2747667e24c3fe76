"""Run the task on either engine from Python: labkit's loop, or Flower's simulation.

``simulate(cfg)`` runs the ServerApp and ClientApps of this package with Flower's Simulation
Engine (``flwr.simulation.run_simulation``, Ray backend) and returns the ``RunRecord``;
``labkit_loop(cfg)`` runs ``lk.fl.fedavg`` on the same task for comparison.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence

from .task import (
    TaskConfig,
    TaskConfigError,
    build_model,
    check_partitions,
    load_data,
    load_partitions,
)

__all__ = ["simulate", "labkit_loop", "labkit_clients"]


BACKENDS = ("inprocess", "ray")


def _backend_config(backend: str, num_cpus: int) -> dict:
    if backend == "inprocess":
        return {}
    # Ray: one CPU per ClientApp actor (two clients at once on 2 cores), no dashboard, loopback
    # only, and a generous start-up timeout (its agents start slowly on a loaded machine).
    os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")
    return {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": num_cpus,
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
        },
    }


def simulate(
    cfg: TaskConfig,
    variant: str = "fedavg",
    partitions: Sequence | None = None,
    backend: str = "inprocess",
    num_cpus: int | None = None,
    verbose: bool = True,
):
    """Run ``cfg`` on Flower's Simulation Engine with ``num_clients`` virtual SuperNodes.

    Args:
        cfg: the task (``cfg.privacy`` selects Flower's DP wrapper).
        variant: ``'fedavg'`` (Message API) or ``'secagg'`` (legacy API with SecAgg+).
        partitions: explicit client index arrays instead of the IID partition (checked: an
            empty client is refused before anything starts).
        backend: ``'inprocess'`` (ClientApps run in this process; see ``inprocess.py``) or
            ``'ray'`` (Flower's default: one worker process per actor).
        num_cpus: CPUs Ray may use (default: all).
        verbose: False shows only Flower's errors (it logs every message at INFO).

    Returns:
        the ``RunRecord`` (accuracy per round, seconds, bytes; ``error`` if the run failed).
    """
    if variant not in ("fedavg", "secagg"):
        raise ValueError(f"variant must be 'fedavg' or 'secagg', got {variant!r}")
    check_partitions(load_partitions(cfg) if partitions is None else partitions, cfg.num_clients)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if variant == "secagg" and partitions is not None:
        raise ValueError("partitions can only be given with variant='fedavg'")
    if variant == "secagg" and cfg.client_fraction != 1.0:
        raise TaskConfigError("client_fraction", cfg.client_fraction, "1.0 for SecAgg+")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    from flwr.simulation import run_simulation

    from . import inprocess  # noqa: F401  (registers the backend)
    from .client_app import make_client_app, make_secagg_client_app
    from .measure import RunRecord
    from .server_app import make_secagg_server_app, make_server_app

    record = RunRecord()
    if variant == "fedavg":
        server, client = make_server_app(cfg, record), make_client_app(cfg, partitions)
    else:
        server, client = make_secagg_server_app(cfg, record), make_secagg_client_app(cfg)
    # Flower's in-memory engine draws node ids with a deprecated random.randint call.
    warnings.filterwarnings(
        "ignore", message="non-integer arguments to randrange", category=DeprecationWarning
    )
    if not verbose:
        logging.getLogger("flwr").setLevel(logging.ERROR)  # after flwr set its own level
    try:
        run_simulation(
            server_app=server,
            client_app=client,
            num_supernodes=cfg.num_clients,
            backend_name=backend,
            backend_config=_backend_config(backend, num_cpus or os.cpu_count() or 1),
        )
    except RuntimeError:
        if record.error is None:  # not the ServerApp's own (recorded) failure
            raise
    if record.error is None and len(record.rounds) < cfg.num_rounds:
        record.error = "the simulation stopped early; see Flower's log above"
    return record


def labkit_clients(cfg: TaskConfig):
    """Return the task's clients as ``lk.fl.client_datasets`` pairs."""
    import labkit as lk

    ds = load_data(cfg.num_train, cfg.num_test, cfg.seed)
    return lk.fl.client_datasets(ds.x_train, ds.y_train, load_partitions(cfg))


def labkit_loop(cfg: TaskConfig, aggregator=None, vectorize: bool = False):
    """Run ``lk.fl.fedavg`` on the task; return ``(FLHistory, seconds)``.

    ``vectorize=False`` trains clients one by one with ``make_client_update``, the function
    the Flower ClientApp calls, so the two engines compute the same numbers.
    """
    import time

    import labkit as lk

    ds = load_data(cfg.num_train, cfg.num_test, cfg.seed)
    clients = labkit_clients(cfg)
    model = build_model(cfg)
    start = time.perf_counter()
    history = lk.fl.fedavg(
        model,
        clients,
        cfg.num_rounds,
        client_fraction=cfg.client_fraction,
        local_epochs=cfg.local_epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        aggregator=aggregator,
        test_data=(ds.x_test, ds.y_test),
        seed=cfg.seed,
        vectorize=vectorize,
    )
    return history, time.perf_counter() - start
