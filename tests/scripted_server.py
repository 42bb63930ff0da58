"""Small scripted HTTP servers on loopback, for what FakeIMDS does not play: answers that trickle,
bytes IMDS would never send.

``TrickleServer`` reads each request and answers it with a fixed response, sending the bytes of its
chosen part one at a time with a pause between them, as a hostile or broken intermediary might.
``CountingListener`` only counts the connections made to it (a proxy that must never be used).
``ScriptedIMDS`` answers each path with exactly the bytes a test gives (a token with CR/LF, a
document nested 10,000 deep, a Date header with a 20-digit year) through FakeIMDS's HTTP layer;
its routes may change while it runs (a property test swaps them per example).
``ScriptedServer(script)`` answers each request by ``script(method, path)``: a ``Status`` (any
status, 3xx included, at once or after a delay: a box in IMDS's place that answers only 418) or a
``Trickle`` (a 200 written one byte every ``gap`` seconds, so that no read waits a whole timeout).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from email.utils import formatdate
from http import HTTPStatus

from typing_extensions import Self

from imdscreds.testing._server import Reply, Server


def http_response(status: int, body: bytes, *, reason: str = "OK") -> tuple[bytes, bytes]:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


class _Listener:
    """A loopback listener whose accept loop hands each connection to ``_handle``."""

    def __init__(self) -> None:
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    endpoint = url

    def __enter__(self) -> Self:
        self._threads[0].start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.close()


class TrickleServer(_Listener):
    """Answers every request with ``head`` + ``body``; the part named by ``trickle`` byte by byte."""

    def __init__(self, head: bytes, body: bytes, *, delay: float, trickle: str = "head") -> None:
        if trickle not in ("head", "body"):
            raise ValueError(f"trickle must be 'head' or 'body', not {trickle!r}")
        super().__init__()
        self.head, self.body, self.delay, self.trickle = head, body, delay, trickle

    def _handle(self, conn: socket.socket) -> None:
        thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                slow = self.head if self.trickle == "head" else self.body
                if self.trickle == "body":
                    conn.sendall(self.head)
                for index in range(len(slow)):
                    if self._stop.wait(self.delay):
                        return
                    conn.sendall(slow[index : index + 1])
                if self.trickle == "head":
                    conn.sendall(self.body)
            except OSError:  # the client gave up and closed: what the test wants to see
                return


class CountingListener(_Listener):
    """Accepts connections, counts them, closes them (a proxy that must never be used)."""


def elapsed(start: float) -> float:
    return time.monotonic() - start


# -- answers chosen byte for byte, per path --------------------------------------------------------

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


# -- answers chosen per request: any status, or a trickle -----------------------------------------


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


def _answer(status: int, body: bytes) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    head, body = http_response(status, body, reason=reason)
    if 300 <= status <= 399:  # a redirect carries where to, as a real one would
        head = head[:-2] + b"Location: http://127.0.0.1:9/elsewhere\r\n\r\n"
    return head + body


class ScriptedServer(_Listener):
    """Answers each request on a connection (keep-alive) by ``script(method, path)``."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self._conns: list[socket.socket] = []

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for conn in list(self._conns):  # an idle keep-alive connection would block its thread
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        super().__exit__(*exc_info)

    def _handle(self, conn: socket.socket) -> None:
        self._conns.append(conn)
        thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        # A client that gives up mid-answer closes its end: that is the point, not an error.
        with conn, contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(4096)
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
                    buffer += conn.recv(4096)
                buffer = buffer[length:]
                self.seen.append((method, path))
                answer = self.script(method, path.split("?", 1)[0])
                if isinstance(answer, Status):
                    if self._stop.wait(answer.delay):
                        return
                    conn.sendall(_answer(answer.status, answer.body))
                    continue
                for byte in _answer(200, answer.body):
                    if self._stop.wait(answer.gap):
                        return
                    conn.sendall(bytes([byte]))
