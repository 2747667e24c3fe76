"""A Simulation Engine backend that runs each ClientApp call in the simulating process.

Flower 1.23's Simulation Engine ships one backend, Ray; its ``supported_backends`` table is the
documented place to add another. Ray starts a GCS, a raylet, agents and one worker process per
actor (each importing TensorFlow): on a loaded 2-core machine it did not come up within 5 minutes.
This backend keeps Flower's engine (virtual SuperNodes, node configs with ``partition-id``,
message queues, the ServerApp thread) and only replaces *where* a ClientApp runs: here, in one
worker thread of this process, one message at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from flwr.clientapp.client_app import ClientApp, ClientAppException
from flwr.server.superlink.fleet.vce.backend import Backend, supported_backends

__all__ = ["InProcessBackend", "NAME"]

NAME = "inprocess"


class InProcessBackend(Backend):
    """Run ClientApps in the current process, sequentially (one worker)."""

    def __init__(self, backend_config) -> None:
        super().__init__(backend_config)
        self.app_fn: Callable[[], ClientApp] | None = None

    def build(self, app_fn: Callable[[], ClientApp]) -> None:
        """Remember how to load the ClientApp."""
        self.app_fn = app_fn

    @property
    def num_workers(self) -> int:
        """One message at a time: TensorFlow already uses every core inside a call."""
        return 1

    def is_worker_idle(self) -> bool:
        """The single worker thread is idle whenever the engine asks."""
        return True

    def terminate(self) -> None:
        """Nothing to stop."""

    def process_message(self, message, context):
        """Run the ClientApp on ``message``; errors become ClientAppException (an error reply)."""
        if self.app_fn is None:
            raise ValueError("call build() before process_message()")
        # A copy, as a real transport would deliver: mods such as secaggplus_mod edit the
        # message they receive, and the engine hands every node the same record objects.
        message = copy.deepcopy(message)
        try:
            return self.app_fn()(message, context), context
        except Exception as ex:
            raise ClientAppException(f"{type(ex).__name__}: {ex}") from ex


supported_backends.setdefault(NAME, InProcessBackend)
