"""A scripted HTTP server on 127.0.0.1 for what FakeIMDS will not do: any status, and trickling.

``ScriptedServer(script)`` answers each request with ``script(method, path)``: a ``Status`` (that
status and a body, at once or after a delay: a box in IMDS's place that answers only 418) or a
``Trickle`` (a valid 200 answer, written one byte every ``gap`` seconds, so that no single read
ever waits a whole timeout). It speaks just enough HTTP/1.1 on raw sockets to do both, and closes
every connection when it stops, so a trickle ends with the test.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType

__all__ = ["ScriptedServer", "Status", "Trickle"]


@dataclass(frozen=True)
class Status:
    """Answer with this status after ``delay`` seconds (a ``Location`` for redirects)."""

    status: int
    body: bytes = b"not IMDS"
    delay: float = 0.0


@dataclass(frozen=True)
class Trickle:
    """Answer 200 with ``body``, one byte every ``gap`` seconds."""

    gap: float
    body: bytes = b"x" * 64


Script = Callable[[str, str], "Status | Trickle"]


def _head(status: int, length: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {length}", "Content-Type: text/plain"]
    if 300 <= status <= 399:
        lines.append("Location: http://127.0.0.1:9/elsewhere")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        # A client that gives up mid-answer closes its end: that is the point, not an error.
        with contextlib.suppress(OSError):
            self._serve(self.request)

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        while not self.server.stopping.is_set():
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path = request_line.split(" ")[:2]
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            while len(buffer) < length:
                buffer += sock.recv(4096)
            buffer = buffer[length:]
            self.server.seen.append((method, path))
            answer = self.server.script(method, path.split("?", 1)[0])
            if isinstance(answer, Status):
                if self.server.stopping.wait(answer.delay):
                    return
                sock.sendall(_head(answer.status, len(answer.body)) + answer.body)
                continue
            for byte in _head(200, len(answer.body)) + answer.body:
                if self.server.stopping.wait(answer.gap):
                    return
                sock.sendall(bytes([byte]))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stopping = threading.Event()
        self.seen: list[tuple[str, str]] = []
        self.connections: list[socket.socket] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        self.connections.append(request)
        super().process_request(request, client_address)


class ScriptedServer:
    """The server, as a context manager; ``endpoint`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, script: Script) -> None:
        self._server = _Server(script)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request, in arrival order."""
        return list(self._server.seen)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        for connection in self._server.connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._server.server_close()
        self._thread.join(5)
