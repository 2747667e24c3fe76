"""Flower ServerApps: FedAvg with labkit's sampling, aggregation and central evaluation.

``app`` (Message API) first asks every node which partition it holds (a ``query`` message), then
runs ``LabkitFedAvg``: each round it samples the same partitions with the same per-client seeds
as ``lk.fl.fedavg``, sends the global weights to the nodes holding them, and combines the replies
with labkit's ``WeightedMean`` on the updates (new minus global weights). With ``privacy`` set it
wraps the strategy in Flower's fixed-clipping DP wrapper. ``secagg_app`` runs the same task
through Flower's legacy ``DefaultWorkflow`` with the SecAgg+ fit workflow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.common import ndarrays_to_parameters
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
)

from .measure import CountingGrid, RunRecord
from .task import (
    TaskConfig,
    TaskConfigError,
    build_model,
    load_data,
    load_partitions,
    round_plan,
)

__all__ = ["RoundFailedError", "LabkitFedAvg", "make_server_app", "make_secagg_server_app"]


class RoundFailedError(RuntimeError):
    """A round could not complete: a sampled client did not reply in time, or is gone."""


def _evaluator(cfg: TaskConfig, record: RunRecord):
    """Return Flower's ``evaluate_fn(server_round, arrays)``: labkit's evaluator on the test set."""
    import tensorflow as tf

    import labkit as lk

    ds = load_data(cfg.num_train, cfg.num_test, cfg.seed)
    evaluate = lk.fl.make_evaluator(build_model(cfg))
    x = tf.convert_to_tensor(ds.x_test, tf.float32)
    y = tf.convert_to_tensor(ds.y_test, tf.int64)

    def evaluate_fn(server_round: int, arrays) -> MetricRecord:
        weights = arrays if isinstance(arrays, list) else arrays.to_numpy_ndarrays()
        loss, acc = evaluate(weights, x, y)
        record.round_done(server_round, acc, loss)
        return MetricRecord({"accuracy": acc, "loss": loss})

    return evaluate_fn


def discover_nodes(grid: Grid, cfg: TaskConfig, timeout: float) -> dict[int, int]:
    """Wait for ``num_clients`` nodes, ask each for its partition; return {partition: node id}.

    Refuses (ValueError) a node with an empty partition and a missing or doubled partition id,
    before any training message is sent.
    """
    deadline = time.monotonic() + timeout
    while len(node_ids := list(grid.get_node_ids())) < cfg.num_clients:
        if time.monotonic() > deadline:
            raise RoundFailedError(
                f"only {len(node_ids)} of num_clients={cfg.num_clients} nodes connected "
                f"within {timeout:g} s"
            )
        time.sleep(0.5)
    queries = [
        Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in node_ids
    ]
    replies = list(grid.send_and_receive(queries, timeout=timeout))
    node_of: dict[int, int] = {}
    for reply in replies:
        if reply.has_error():
            raise RoundFailedError(
                f"node {reply.metadata.src_node_id} failed: {reply.error.reason}"
            )
        metrics = reply.content["metrics"]
        pid, n = int(metrics["partition-id"]), int(metrics["num-examples"])
        if n <= 0:
            raise TaskConfigError(
                f"partition {pid} (node {reply.metadata.src_node_id})",
                f"{n} examples",
                "non-empty: every client needs at least 1 example",
            )
        if pid in node_of:
            raise TaskConfigError(
                "partition-id", pid, "held by one node", "it is held by two nodes"
            )
        node_of[pid] = reply.metadata.src_node_id
    missing = sorted(set(range(cfg.num_clients)) - set(node_of))
    if missing:
        raise RoundFailedError(
            f"no node answered for partitions {missing} within {timeout:g} s "
            f"(partition-id must be in [0, {cfg.num_clients - 1}])"
        )
    return node_of


class LabkitFedAvg(FedAvg):
    """FedAvg whose sampling, per-client seeds and aggregation are those of ``lk.fl.fedavg``.

    Every sampled client must reply within the round timeout; otherwise the round fails with
    ``RoundFailedError`` (labkit's loop has no drop-outs, so averaging fewer clients would
    silently change the algorithm).
    """

    def __init__(self, cfg: TaskConfig, node_of: dict[int, int], record: RunRecord | None = None):
        super().__init__(fraction_evaluate=0.0, min_available_nodes=cfg.num_clients)
        self.cfg, self.node_of, self.record = cfg, node_of, record
        self.plan = round_plan(cfg)
        self.chosen: list[int] = []
        self.current: list[np.ndarray] = []

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample labkit's partitions for this round; one message with its seed per client."""
        self.chosen, seeds = next(self.plan)
        alive = set(grid.get_node_ids())
        gone = [k for k in self.chosen if self.node_of[k] not in alive]
        if gone:
            raise RoundFailedError(
                f"round {server_round}: the nodes holding partitions {gone} are no longer "
                "connected to the SuperLink"
            )
        self.current = arrays.to_numpy_ndarrays()
        messages = []
        for k, seed in zip(self.chosen, seeds, strict=True):
            cfg = ConfigRecord({**dict(config), "server-round": server_round, "seed": seed})
            content = RecordDict({"arrays": arrays, "config": cfg})
            messages.append(Message(content, dst_node_id=self.node_of[k], message_type="train"))
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        """Check every sampled client replied; return global + WeightedMean of the updates."""
        from labkit.aggregation import WeightedMean

        replies = list(replies)
        ok = [r for r in replies if not r.has_error()]
        if len(ok) < len(self.chosen):
            got = {int(r.content["metrics"]["partition-id"]) for r in ok}
            errors = [
                f"node {r.metadata.src_node_id}: {r.error.reason}" for r in replies if r.has_error()
            ]
            raise RoundFailedError(
                f"round {server_round}: {len(ok)} of {len(self.chosen)} sampled clients replied "
                f"within round_timeout={self.cfg.round_timeout:g} s; no reply from partitions "
                f"{sorted(set(self.chosen) - got)}" + (f"; errors: {errors}" if errors else "")
            )
        # labkit's order (sorted partition ids), so the float64 sum matches bit for bit.
        ok.sort(key=lambda r: int(r.content["metrics"]["partition-id"]))
        if self.record is not None:
            metrics = [r.content["metrics"] for r in ok]
            self.record.client_timings.append(
                {
                    key: float(np.mean([float(m.get(key, 0.0)) for m in metrics]))
                    for key in ("process-age", "train-seconds")
                }
            )
        updates, counts = zip(*(_read_reply(r, self.current) for r in ok), strict=True)
        delta = WeightedMean().aggregate(updates, np.asarray(counts, dtype=np.float64))
        new_global = [g + d.astype(g.dtype) for g, d in zip(self.current, delta, strict=True)]
        return ArrayRecord(new_global), MetricRecord({"num-examples": int(sum(counts))})


class ReplyError(TaskConfigError):
    """A client's reply that the strategy cannot use (missing field, wrong shape, NaN)."""


def _read_reply(reply: Message, current: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Return (update = trained - global, example count) from one reply, or raise ReplyError."""
    from labkit.fl.client import model_update

    name = f"reply of node {reply.metadata.src_node_id}"
    try:
        new = reply.content["arrays"].to_numpy_ndarrays()
        n = reply.content["metrics"]["num-examples"]
    except (KeyError, TypeError) as err:
        raise ReplyError(
            name, "a reply without it", "'arrays' and metrics['num-examples']"
        ) from err
    shapes, want = [np.shape(a) for a in new], [a.shape for a in current]
    if shapes != want:
        raise ReplyError(f"{name}: arrays", f"shapes {shapes}", f"the global model's {want}")
    if not all(np.all(np.isfinite(a)) for a in new):
        raise ReplyError(f"{name}: arrays", "NaN or inf values", "finite weights")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ReplyError(f"{name}: num-examples", n, "an integer >= 1")
    return model_update(new, current), int(n)


def _wrap_privacy(strategy, cfg: TaskConfig):
    """Wrap ``strategy`` in Flower's DP wrapper chosen by ``cfg.privacy`` (or leave it)."""
    args = (cfg.noise_multiplier, cfg.l2_norm_clip, cfg.clients_per_round)
    if cfg.privacy == "dp-server":
        return DifferentialPrivacyServerSideFixedClipping(strategy, *args)
    if cfg.privacy == "dp-client":
        return DifferentialPrivacyClientSideFixedClipping(strategy, *args)
    return strategy


def _results_path(context: Context) -> Path | None:
    path = str(context.run_config.get("results-path", "") or "")
    return Path(path) if path else None


def _run_and_record(body, cfg: TaskConfig, context: Context, record: RunRecord | None) -> None:
    """Run ``body(record)``; write the record (with any error) to results-path if one is set."""
    record = record if record is not None else RunRecord()
    record.settings = cfg.to_run_config()
    record.path = _results_path(context)
    try:
        body(record)
    except BaseException as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.save()


def make_server_app(cfg: TaskConfig | None = None, record: RunRecord | None = None) -> ServerApp:
    """Return the Message-API ServerApp; ``cfg`` None reads the run config (``flwr run``).

    ``record`` (simulation) collects accuracy per round, timings and bytes in this process.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        task = cfg if cfg is not None else TaskConfig.from_run_config(context.run_config)

        def body(rec: RunRecord) -> None:
            counting = CountingGrid(grid, rec)
            evaluate_fn = _evaluator(task, rec)  # imports TF before the clock starts
            node_of = discover_nodes(counting, task, task.round_timeout)
            strategy = _wrap_privacy(LabkitFedAvg(task, node_of, rec), task)
            initial = [v.numpy() for v in build_model(task).trainable_variables]
            if task.privacy != "none":
                # Flower's DP wrappers draw noise from NumPy's global generator, which building
                # the seeded model just reset: reseed it from OS entropy so the noise is not a
                # replayable sequence (it is still Mersenne Twister, not a secure sampler).
                np.random.seed()
            rec.start()
            strategy.start(
                grid=counting,
                initial_arrays=ArrayRecord(initial),
                num_rounds=task.num_rounds,
                timeout=task.round_timeout,
                evaluate_fn=evaluate_fn,
            )

        _run_and_record(body, task, context, record)

    return app


def make_secagg_server_app(cfg: TaskConfig | None = None, record: RunRecord | None = None):
    """Return a legacy ServerApp running FedAvg through Flower's SecAgg+ fit workflow.

    Every client takes part every round (``client_fraction`` must be 1): Flower's legacy
    sampling cannot be made to follow labkit's, and the per-partition seeds travel in the config.
    """
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        task = cfg if cfg is not None else TaskConfig.from_run_config(context.run_config)
        if task.client_fraction != 1.0:
            raise TaskConfigError("client_fraction", task.client_fraction, "1.0 for SecAgg+")

        def body(rec: RunRecord) -> None:
            counting = CountingGrid(grid, rec)
            evaluate_fn = _evaluator(task, rec)
            plan = round_plan(task)

            def fit_config(server_round: int) -> dict:
                _, seeds = next(plan)  # every partition, in order: seeds[k] is partition k's
                return {"seeds": ",".join(map(str, seeds))}

            def legacy_evaluate(server_round, ndarrays, config):
                metrics = evaluate_fn(server_round, list(ndarrays))
                return float(metrics["loss"]), {"accuracy": float(metrics["accuracy"])}

            initial = [v.numpy() for v in build_model(task).trainable_variables]
            sizes = [len(p) for p in load_partitions(task)]

            class _CountingFedAvg(LegacyFedAvg):
                def aggregate_fit(self, server_round, results, failures):
                    aggregated = super().aggregate_fit(server_round, results, failures)
                    if aggregated[0] is not None:
                        rec.aggregated_rounds += 1
                    return aggregated

            strategy = _CountingFedAvg(
                fraction_fit=1.0,
                fraction_evaluate=0.0,
                min_fit_clients=task.num_clients,
                min_available_clients=task.num_clients,
                initial_parameters=ndarrays_to_parameters(initial),
                on_fit_config_fn=fit_config,
                evaluate_fn=legacy_evaluate,
            )
            legacy = LegacyContext(
                context=context,
                config=ServerConfig(num_rounds=task.num_rounds, round_timeout=task.round_timeout),
                strategy=strategy,
            )
            secagg = SecAggPlusWorkflow(
                num_shares=task.num_clients,
                reconstruction_threshold=max(2, task.num_clients // 2 + 1),
                max_weight=float(max(sizes)),  # weights n_k / max_weight <= 1: no overflow
                timeout=task.round_timeout,
            )
            rec.start()
            DefaultWorkflow(fit_workflow=secagg)(counting, legacy)
            if rec.aggregated_rounds < task.num_rounds:
                # The workflow logs "Secure aggregation halted" and carries on with the old model.
                raise RoundFailedError(
                    f"SecAgg+ aggregated {rec.aggregated_rounds} of {task.num_rounds} rounds; "
                    "see Flower's log for the stage that halted"
                )

        _run_and_record(body, task, context, record)

    return app


# What `flwr run` loads (flower_app/pyproject.toml names these).
app = make_server_app()
secagg_app = make_secagg_server_app()
