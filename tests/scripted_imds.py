"""``ScriptedIMDS``: a loopback HTTP server that answers each path with exactly the bytes a test gives.

``FakeIMDS`` plays IMDS faithfully, so it can only send what IMDS would send. A hostile or broken
host sends anything: a token body with CR/LF, a credentials document nested 10,000 deep, a ``Date``
header with a 20-digit year. This server sends those, over a real socket, through the same HTTP
layer as ``FakeIMDS``. Routes may be changed while it runs (a property test swaps them per example).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from email.utils import formatdate

from imdscreds.testing._server import Reply, Server

__all__ = ["CREDENTIALS", "LISTING", "TOKEN", "ScriptedIMDS", "scripted_imds"]

TOKEN = "/latest/api/token"
LISTING = "/latest/meta-data/iam/security-credentials-extended/"
CREDENTIALS = LISTING + "scripted-role"


class ScriptedIMDS:
    """Answers ``routes[path]`` (a ``Reply``, or bytes for a 200); 404 for any other path.

    A token PUT is answered ``scripted-token`` unless the routes say otherwise; ``date`` is the
    ``Date`` header of every answer. ``seen`` lists ``(method, path)`` in arrival order.
    """

    def __init__(self, routes: dict[str, Reply | bytes] | None = None) -> None:
        self.routes: dict[str, Reply | bytes] = {
            TOKEN: b"scripted-token",
            LISTING: b"scripted-role",
            **(routes or {}),
        }
        self.date = formatdate(usegmt=True)
        self.seen: list[tuple[str, str]] = []
        self._stopping = threading.Event()
        self._server = Server(
            ("127.0.0.1", 0),
            family=socket.AF_INET,
            responder=self._respond,
            date_header=lambda: self.date,
            stopping=self._stopping,
            hold_limit=5.0,
        )
        self._thread = threading.Thread(target=self._server.serve, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def errors(self) -> list[str]:
        """Tracebacks of the server's own failures (a test asserts there were none)."""
        return self._server.errors

    def _respond(self, method: str, path: str, headers: Message) -> Reply:
        self.seen.append((method, path))
        route = self.routes.get(path)
        if route is None:
            return Reply(status=404, body=b"404 - Not Found")
        return route if isinstance(route, Reply) else Reply(body=route)

    def start(self) -> ScriptedIMDS:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stop_serving()
        self._thread.join(5.0)
        self._server.close_connections(5.0)
        self._server.server_close()


@contextmanager
def scripted_imds(routes: dict[str, Reply | bytes] | None = None) -> Iterator[ScriptedIMDS]:
    """A running ``ScriptedIMDS``, stopped (every socket closed) at the end."""
    server = ScriptedIMDS(routes).start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors
