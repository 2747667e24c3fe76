"""What a run measures: accuracy per round, wall time, and bytes on the wire per message.

``CountingGrid`` wraps the Grid a ServerApp receives and counts the serialized size of every
message's content it sends (down) and receives (up), so the Message-API strategy, the DP
wrappers and the SecAgg+ workflow (four message exchanges per round) are measured the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from flwr.app import Message
from flwr.common import serde
from flwr.serverapp import Grid

__all__ = ["RunRecord", "CountingGrid", "content_bytes"]


def content_bytes(msg: Message) -> int:
    """Return the protobuf size of ``msg``'s content (its records), 0 for an error reply."""
    if msg.has_error():
        return 0
    return int(serde.recorddict_to_proto(msg.content).ByteSize())


class RunRecord:
    """Per-round accuracy, loss and seconds since ``start()``; bytes up and down; any error."""

    def __init__(self):
        self.settings: dict = {}
        self.path: Path | None = None
        self.rounds: list[int] = []
        self.test_accuracy: list[float] = []
        self.test_loss: list[float] = []
        self.wall_time: list[float] = []
        self.initial_accuracy: float | None = None
        self.bytes_up = self.bytes_down = 0
        self.setup_bytes_up = 0
        self.error: str | None = None
        self.aggregated_rounds = 0  # SecAgg+: rounds whose secure sum succeeded
        self.client_timings: list[dict] = []  # per round: mean ClientApp process age, training
        self._t0: float | None = None

    def start(self) -> None:
        """Start the clock (after start-up: imports, node discovery, tracing)."""
        self._t0 = time.perf_counter()
        self.setup_bytes_up, self.bytes_up, self.bytes_down = self.bytes_up, 0, 0
        self.save()  # a deployment script sees start-up end here

    def round_done(self, server_round: int, accuracy: float, loss: float) -> None:
        """Record the central evaluation after ``server_round`` (0 = initial weights)."""
        if server_round == 0:
            self.initial_accuracy = float(accuracy)
            return
        self.rounds.append(int(server_round))
        self.test_accuracy.append(float(accuracy))
        self.test_loss.append(float(loss))
        self.wall_time.append(time.perf_counter() - (self._t0 or time.perf_counter()))
        self.save()  # progress a deployment script can watch

    @property
    def seconds_per_round(self) -> float:
        """Mean wall time per round (the first round included)."""
        return self.wall_time[-1] / len(self.wall_time) if self.wall_time else float("nan")

    def as_dict(self) -> dict:
        """Return the record as JSON-ready types."""
        keys = ("settings", "rounds", "test_accuracy", "test_loss", "wall_time")
        out = {k: getattr(self, k) for k in keys}
        out.update(
            initial_accuracy=self.initial_accuracy,
            bytes_up=self.bytes_up,
            bytes_down=self.bytes_down,
            setup_bytes_up=self.setup_bytes_up,
            client_timings=self.client_timings,
            error=self.error,
        )
        return out

    def save(self) -> None:
        """Write the record to ``path`` atomically (a no-op without a path)."""
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=1))
        tmp.replace(self.path)


class CountingGrid(Grid):
    """A Grid that forwards everything to ``grid`` and counts content bytes in ``record``."""

    def __init__(self, grid: Grid, record: RunRecord):
        self._grid, self._record = grid, record

    def set_run(self, run_id: int) -> None:
        self._grid.set_run(run_id)

    @property
    def run(self):
        return self._grid.run

    def create_message(self, *args, **kwargs) -> Message:
        return self._grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        self._record.bytes_down += sum(content_bytes(m) for m in messages)
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = list(self._grid.pull_messages(message_ids))
        self._record.bytes_up += sum(content_bytes(m) for m in replies)
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        self._record.bytes_down += sum(content_bytes(m) for m in messages)
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self._record.bytes_up += sum(content_bytes(m) for m in replies)
        return replies
