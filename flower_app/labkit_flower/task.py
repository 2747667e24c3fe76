"""The task every engine runs: data, partition, model and hyper-parameters, read in one place.

labkit's loop (``lk.fl.fedavg``), Flower's simulation and Flower's deployment all build their
clients from ``TaskConfig``, so they train the same model on the same partitions with the same
hyper-parameters and seeds. The Flower app reads the config from the run config
(``[tool.flwr.app.config]`` in ``flower_app/pyproject.toml``, overridable with
``flwr run --run-config``); Python callers pass a ``TaskConfig``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from labkit._checks import ParameterError, check_choice, check_float, check_int

# Flower phones home unless told not to; the workbook runs offline. Set before flwr is imported
# by anything that imports this module first, and inherited by every process we start.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PRIVACY = ("none", "dp-server", "dp-client")
MODELS = ("logistic", "2nn", "cnn")


class TaskConfigError(ParameterError):
    """A task setting, partition or reply is out of range (names it, the value, what is allowed)."""


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
        # Check and normalise every field (np.int64 -> int, 1 -> 1.0); a frozen dataclass, so
        # through object.__setattr__. Strings are never numbers here: '0.1' is an error.
        set_ = object.__setattr__
        for name in ("num_clients", "num_rounds", "local_epochs", "batch_size"):
            set_(self, name, check_int(name, getattr(self, name), 1))
        for name in ("num_train", "num_test", "seed"):
            set_(self, name, check_int(name, getattr(self, name), 0))
        set_(self, "client_fraction", check_float("client_fraction", self.client_fraction, 0.0,
                                                  1.0, low_open=True))  # fmt: skip
        for name in ("learning_rate", "l2_norm_clip", "round_timeout"):
            set_(self, name, check_float(name, getattr(self, name), 0.0, low_open=True))
        set_(self, "noise_multiplier", check_float("noise_multiplier", self.noise_multiplier, 0.0))
        if not isinstance(self.small, bool | np.bool_):
            raise TaskConfigError("small", self.small, "True or False (a bool, not a string)")
        set_(self, "small", bool(self.small))
        check_choice("model", self.model, MODELS)
        check_choice("privacy", self.privacy, PRIVACY)

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
                kwargs[f.name] = _coerce(key, run_config[key], f.default)
        return cls(**kwargs)

    def replace(self, **changes) -> TaskConfig:
        """Return a copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _coerce(name: str, value, default):
    """Flower's run config is TOML-typed; accept a bool's usual spellings and an int for a float.

    Anything else goes to ``TaskConfig`` unchanged, which refuses it by name ('0.1' stays a
    string and is refused; 'ture' is refused here, never read as False).
    """
    if isinstance(default, bool) and isinstance(value, str):
        if value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise TaskConfigError(name, value, f"a bool or one of {_TRUE + _FALSE}")
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_partitions(partitions, num_clients: int | None = None) -> None:
    """Refuse a partition list with an empty client (before any engine starts)."""
    if num_clients is not None and len(partitions) != num_clients:
        raise TaskConfigError(
            "partitions", f"{len(partitions)} index arrays", f"num_clients={num_clients} arrays"
        )
    for k, part in enumerate(partitions):
        if np.asarray(part).size == 0:
            raise TaskConfigError(
                f"partitions[{k}]",
                np.asarray(part),
                "non-empty: every client needs at least 1 example",
                f"sizes {[int(np.size(p)) for p in partitions]}",
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
    """Yield ``(chosen partition ids, per-client seeds)`` per round: ``lk.fl.fedavg``'s own
    schedule (``labkit.fl.loop.client_schedule``), so both engines train the same clients alike."""
    from itertools import islice

    from labkit.fl.loop import client_schedule

    schedule = client_schedule(cfg.num_clients, cfg.clients_per_round, cfg.seed)
    for chosen, seeds in islice(schedule, cfg.num_rounds if num_rounds is None else num_rounds):
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
