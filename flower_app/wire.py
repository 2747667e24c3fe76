"""A loopback TCP relay that counts the bytes each direction carries (what TLS adds on the wire).

Flower's record counts the serialized messages (the payload); it cannot see TLS records,
handshakes, gRPC framing or the SuperNodes' polling. Put between the SuperNodes and the
SuperLink's Fleet API, this relay counts the TCP payload itself, encrypted or not; the SuperLink's
certificate names 127.0.0.1, not a port, so TLS verification still holds through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["ByteCounter"]


class ByteCounter:
    """Listen on a free loopback port; relay every connection to ``127.0.0.1:target``."""

    def __init__(self, target: int):
        self.target, self.up, self.down = target, 0, 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(src, dst, up), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()
