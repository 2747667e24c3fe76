"""Flower ClientApps that train with labkit's own client update on a labkit partition.

``app`` (Message API) answers two message types: ``query`` (which partition do you hold, how many
examples) and ``train`` (run ``lk.fl.make_client_update(model)`` from the received weights with the
seed the server sent). ``secagg_app`` is the same client behind Flower's legacy ``NumPyClient``,
because Flower 1.23's SecAgg+ (``secaggplus_mod``) still speaks the legacy fit messages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.common.differential_privacy_constants import KEY_CLIPPING_NORM

from .task import TaskConfig, build_model, load_data, load_partitions, process_age

__all__ = ["make_client_app", "make_secagg_client_app", "app", "secagg_app"]


@lru_cache(maxsize=2)
def _trainer(cfg: TaskConfig):
    """One model and one traced ``client_update`` per process (a ClientApp may be reused)."""
    import labkit as lk

    return lk.fl.make_client_update(build_model(cfg))


def _client_data(cfg: TaskConfig, partition_id: int, partitions: Sequence | None):
    import tensorflow as tf

    ds = load_data(cfg.num_train, cfg.num_test, cfg.seed)
    parts = load_partitions(cfg) if partitions is None else partitions
    if not 0 <= partition_id < len(parts):
        raise ValueError(f"partition-id must be in [0, {len(parts) - 1}], got {partition_id}")
    idx = np.asarray(parts[partition_id])
    # The same tensors lk.fl.fedavg feeds its client update: float32 inputs, int64 labels.
    return tf.convert_to_tensor(ds.x_train[idx], tf.float32), tf.convert_to_tensor(
        ds.y_train[idx], tf.int64
    )


def _train(cfg: TaskConfig, partition_id: int, weights, seed: int, partitions=None):
    x, y = _client_data(cfg, partition_id, partitions)
    return _trainer(cfg)(
        weights,
        x,
        y,
        local_epochs=cfg.local_epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        seed=seed,
    )


def _config(context: Context, cfg: TaskConfig | None) -> TaskConfig:
    return cfg if cfg is not None else TaskConfig.from_run_config(context.run_config)


def _clip_when_asked(msg: Message, context: Context, call_next) -> Message:
    """Apply Flower's ``fixedclipping_mod`` to train messages that carry a clipping norm.

    The server's ``DifferentialPrivacyClientSideFixedClipping`` puts the norm in the config; the
    mod clips the update (new weights minus received ones) before it leaves the client.
    """
    if msg.metadata.message_type == MessageType.TRAIN and KEY_CLIPPING_NORM in msg.content.get(
        "config", {}
    ):
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def make_client_app(cfg: TaskConfig | None = None, partitions: Sequence | None = None) -> ClientApp:
    """Return the Message-API ClientApp; ``cfg`` None reads the run config (``flwr run``).

    ``partitions`` (simulation only) replaces the task's IID partition with explicit index arrays.
    """
    app = ClientApp(mods=[_clip_when_asked])

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        """Report which partition this node holds and how many examples it has."""
        task = _config(context, cfg)
        pid = int(context.node_config["partition-id"])
        parts = load_partitions(task) if partitions is None else partitions
        n = int(np.size(parts[pid])) if 0 <= pid < len(parts) else -1
        metrics = MetricRecord({"partition-id": pid, "num-examples": n})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        """Train from the received weights with labkit's client update; reply with new weights."""
        age = process_age()  # in a deployment: the fresh ClientApp process's start-up
        task = _config(context, cfg)
        pid = int(context.node_config["partition-id"])
        config = msg.content["config"]
        weights = msg.content["arrays"].to_numpy_ndarrays()
        start = time.perf_counter()
        new_weights, n = _train(task, pid, weights, int(config["seed"]), partitions)
        metrics = {
            "num-examples": n,
            "partition-id": pid,
            "process-age": age,
            "train-seconds": time.perf_counter() - start,
        }
        reply = RecordDict({"arrays": ArrayRecord(new_weights), "metrics": MetricRecord(metrics)})
        return Message(reply, reply_to=msg)

    return app


class _LabkitNumPyClient(NumPyClient):
    """Legacy client for SecAgg+: the seed for each partition arrives in the fit config."""

    def __init__(self, cfg: TaskConfig, partition_id: int):
        self.cfg, self.partition_id = cfg, partition_id

    def fit(self, parameters, config):
        seed = int(str(config["seeds"]).split(",")[self.partition_id])
        new_weights, n = _train(self.cfg, self.partition_id, parameters, seed)
        return new_weights, n, {"partition-id": self.partition_id}


def make_secagg_client_app(cfg: TaskConfig | None = None) -> ClientApp:
    """Return the legacy ClientApp wrapped in Flower's ``secaggplus_mod`` (masks the upload)."""

    def client_fn(context: Context):
        task = _config(context, cfg)
        return _LabkitNumPyClient(task, int(context.node_config["partition-id"])).to_client()

    return ClientApp(client_fn=client_fn, mods=[secaggplus_mod])


# What `flwr run` loads (flower_app/pyproject.toml names these).
app = make_client_app()
secagg_app = make_secagg_client_app()
