"""The task every engine runs: data, partition, model and hyper-parameters, read in one place.

labkit's loop (``lk.fl.fedavg``), Flower's simulation and Flower's deployment all build their
clients from ``TaskConfig``, so they train the same model on the same partitions with the same
hyper-parameters and seeds. The Flower app reads the config from the run config
(``[tool.flwr.app.config]`` in ``flower_app/pyproject.toml``, overridable with
``flwr run --run-config``); Python callers pass a ``TaskConfig``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Flower phones home unless told not to; the workbook runs offline. Set before flwr is imported
# by anything that imports this module first, and inherited by every process we start.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PRIVACY = ("none", "dp-server", "dp-client")
MODELS = ("logistic", "2nn", "cnn")


class TaskConfigError(ValueError):
    """A task setting is out of range (names the setting, the value and the allowed range)."""


@dataclass(frozen=True)
class TaskConfig:
    """One federated task: MNIST subset, IID partition, model and FedAvg hyper-parameters.

    ``num_train`` / ``num_test`` = 0 use the whole split. ``privacy`` selects Flower's DP
    wrapper: ``'dp-server'`` (server-side fixed clipping) or ``'dp-client'`` (client-side, with
    Flower's ``fixedclipping_mod``), with ``noise_multiplier`` and ``l2_norm_clip``.
    ``round_timeout`` bounds the wait for one round's replies, in seconds.
    """

    num_clients: int = 4
    client_fraction: float = 0.5
    num_rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 10
    learning_rate: float = 0.1
    model: str = "2nn"
    small: bool = True
    num_train: int = 2000
    num_test: int = 1000
    seed: int = 0
    privacy: str = "none"
    noise_multiplier: float = 0.0
    l2_norm_clip: float = 1.0
    round_timeout: float = 120.0

    def __post_init__(self):
        for name in ("num_clients", "num_rounds", "local_epochs", "batch_size"):
            _check_int(name, getattr(self, name), 1)
        for name in ("num_train", "num_test", "seed"):
            _check_int(name, getattr(self, name), 0)
        if not (0.0 < self.client_fraction <= 1.0):
            raise TaskConfigError(f"client_fraction must be in (0, 1], got {self.client_fraction}")
        for name in ("learning_rate", "l2_norm_clip", "round_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise TaskConfigError(f"{name} must be a finite number > 0, got {value!r}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier >= 0):
            raise TaskConfigError(
                f"noise_multiplier must be a finite number >= 0, got {self.noise_multiplier!r}"
            )
        if self.model not in MODELS:
            raise TaskConfigError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.privacy not in PRIVACY:
            raise TaskConfigError(f"privacy must be one of {PRIVACY}, got {self.privacy!r}")

    @property
    def clients_per_round(self) -> int:
        """m = max(round(C K), 1), as ``lk.fl.num_sampled_clients`` computes it."""
        return max(int(round(self.client_fraction * self.num_clients)), 1)

    def to_run_config(self) -> dict:
        """Return the settings as Flower run-config keys (``num-clients = 4``)."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_run_config(cls, run_config) -> TaskConfig:
        """Build a config from Flower's run config; keys use dashes, unknown keys are ignored."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            key = f.name.replace("_", "-")
            if key in run_config:
                kwargs[f.name] = _coerce(f.name, run_config[key], f.default)
        return cls(**kwargs)

    def replace(self, **changes) -> TaskConfig:
        """Return a copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


def _coerce(name: str, value, default):
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if isinstance(default, float):
        return float(value)
    return value


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise TaskConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def check_partitions(partitions, num_clients: int | None = None) -> None:
    """Refuse a partition list with an empty client (before any engine starts)."""
    if num_clients is not None and len(partitions) != num_clients:
        raise TaskConfigError(
            f"partitions must hold num_clients={num_clients} index arrays, got {len(partitions)}"
        )
    for k, part in enumerate(partitions):
        if np.asarray(part).size == 0:
            raise TaskConfigError(
                f"partitions[{k}] is empty: every client needs at least 1 example "
                f"(got sizes {[int(np.size(p)) for p in partitions]})"
            )


def process_age() -> float:
    """Seconds since this process started (Linux /proc; 0.0 where unavailable)."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = float(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


@lru_cache(maxsize=4)
def load_data(num_train: int, num_test: int, seed: int):
    """Return labkit's MNIST, subsampled as quick mode does (0 = whole split), cached."""
    import labkit as lk

    ds = lk.data.load_mnist()
    if num_train or num_test:
        ds = lk.data.subsample(ds, num_train or None, num_test or None, seed=seed)
    return ds


def load_partitions(cfg: TaskConfig) -> list[np.ndarray]:
    """Return the clients' index arrays: ``lk.data.partition_iid`` of the training labels."""
    import labkit as lk

    ds = load_data(cfg.num_train, cfg.num_test, cfg.seed)
    parts = lk.data.partition_iid(ds.y_train, cfg.num_clients, seed=cfg.seed)
    check_partitions(parts, cfg.num_clients)
    return parts


def build_model(cfg: TaskConfig):
    """Return the task's Keras model with seeded initial weights (the same in every engine)."""
    import labkit as lk

    ds = load_data(cfg.num_train, cfg.num_test, cfg.seed)
    return lk.models.build_model(
        cfg.model, ds.input_shape, ds.num_classes, small=cfg.small, seed=cfg.seed
    )


def round_plan(cfg: TaskConfig, num_rounds: int | None = None):
    """Yield ``(chosen partition ids, per-client seeds)`` per round, as ``lk.fl.fedavg`` draws.

    ``fedavg`` draws from one generator seeded with ``seed``: the sorted sample of m clients,
    then one ``integers(2**31)`` per chosen client. Same calls, same order: same numbers.
    """
    import labkit as lk

    rng = lk.config.make_rng(cfg.seed)
    for _ in range(cfg.num_rounds if num_rounds is None else num_rounds):
        chosen = np.sort(rng.choice(cfg.num_clients, size=cfg.clients_per_round, replace=False))
        seeds = [int(rng.integers(2**31)) for _ in chosen]
        yield [int(k) for k in chosen], seeds


def epsilon(cfg: TaskConfig, delta: float, num_rounds: int | None = None) -> float | None:
    """Return the user-level epsilon of the DP variants (dp-accounting, as ``lk.dp`` does)."""
    if cfg.privacy == "none":
        return None
    import labkit as lk

    return lk.dp.dpfedavg_epsilon(
        cfg.noise_multiplier,
        cfg.clients_per_round,
        cfg.num_clients,
        cfg.num_rounds if num_rounds is None else num_rounds,
        delta,
    )
