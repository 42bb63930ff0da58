"""The broker's HTTP/1.1 wire: one event loop reads every request head, without a thread each.

A connection that has not sent a complete head costs a file descriptor and a small buffer, never
a thread, so any number of them stalling (slowloris: a byte every few seconds, or silence) cannot
hold up a client that sends its head at once. The loop enforces, per connection:

- a deadline for the whole head, counted from accept (``head_timeout``), or on a kept-alive
  connection from the end of the last answer (``idle_timeout``);
- a cap on connections waiting for a head (``max_waiting``): at the cap a new connection drops the
  OLDEST waiting one, so an attacker that reopens every dropped connection at once cannot starve
  a newcomer, who sends its head within a few milliseconds and is gone from the queue;
- a head of at most ``MAX_HEAD`` bytes and ``MAX_HEADERS`` fields, strictly framed: a request
  with a body (Content-Length other than 0, Transfer-Encoding), obs-fold or whitespace before a
  colon is refused and its connection closed, so no byte of it is read as another request.

All connections come from loopback, so nothing here tells clients apart by address; what lets a
client through is sending a well-formed head in time, and the token (checked by the broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_HEAD", "MAX_HEADERS", "HeadError", "Headers", "Reply", "Request", "Wire"]

log = logging.getLogger("imdscreds.broker")

MAX_HEAD = 8192  # botocore's request head is about 300 bytes
MAX_HEADERS = 64
_MAX_UNSENT = 65536  # a kept-alive client that never reads its answers is dropped past this
_SWEEP_EVERY = 0.25
_LISTEN_QUEUE = 1024
_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class HeadError(Exception):
    """A request head that is not one the broker reads: the status and code to refuse it with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Headers:
    """A request's header fields: case-insensitive, every value of a repeated name kept."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._by_name: dict[str, list[str]] = {}
        for name, value in fields:
            self._by_name.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._by_name.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._by_name.get(name.lower(), ()))


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: Headers

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        connection = (self.headers.get("Connection") or "").lower()
        return self.version == "HTTP/1.1" and "close" not in connection


@dataclass(frozen=True)
class Reply:
    """An answer: ``document`` is sent as JSON unless ``text`` is given; ``close`` ends the
    connection after it."""

    status: int
    document: dict[str, Any] | None = None
    text: str | None = None
    close: bool = False
    content_type: str = "application/json"

    def encode(self, *, keep_alive: bool) -> bytes:
        import json

        body = (self.text if self.text is not None else json.dumps(self.document)).encode()
        lines = [
            f"HTTP/1.1 {self.status} {http.HTTPStatus(self.status).phrase}",
            "Server: imdscreds-broker",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
        ]
        if self.status == 429:
            lines.append("Retry-After: 1")
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_head(head: bytes) -> Request:
    """The request in ``head`` (without its blank line), or HeadError saying what is wrong."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN_CHARS:
        raise HeadError(400, "BadRequest", "The request line is not METHOD TARGET HTTP/1.1.")
    method, target, version = (part.decode("latin-1") for part in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HeadError(400, "BadRequest", f"{version[:20]!r} is not HTTP/1.1 or HTTP/1.0.")
    if not target.startswith("/") or not target.isprintable():
        raise HeadError(400, "BadRequest", "The request target must be a path (/credentials).")
    if len(lines) - 1 > MAX_HEADERS:
        raise HeadError(431, "HeadTooLarge", f"More than {MAX_HEADERS} header fields.")
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # RFC 9112 5.1-5.2: no whitespace before the colon, no line folding; both are how one
        # request is smuggled past a proxy as two.
        if not colon or not name or not set(name) <= _TOKEN_CHARS:
            raise HeadError(400, "BadRequest", "A header line is not NAME: VALUE.")
        fields.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    headers = Headers(fields)
    if len(headers.get_all("Host")) > 1:
        raise HeadError(400, "DuplicateHost", "The request has more than one Host header.")
    if headers.get_all("Transfer-Encoding"):
        raise HeadError(400, "RequestBody", "A request with Transfer-Encoding is not served.")
    lengths = headers.get_all("Content-Length")
    if lengths and lengths != ["0"]:
        raise HeadError(
            413,
            "RequestBody",
            "A request with a body (Content-Length) is not served; GET has none.",
        )
    return Request(method, target, version, headers)


Handler = Callable[[Request], "Reply | Coroutine[Any, Any, Reply | None] | None"]


class _Connection(asyncio.Protocol):
    __slots__ = ("_buffer", "_busy", "_wire", "transport", "trusted")

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False
        self.trusted = False  # has had a credentials answer: kept alive in a queue of its own

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._wire.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._wire.forget(self)

    def eof_received(self) -> bool:
        return False  # a half-closed client gets no answer: close

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._next()
        elif len(self._buffer) > MAX_HEAD:
            self.drop()

    def _next(self) -> None:
        end = self._buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                self._busy = True
                self._wire.refuse(self, HeadError(431, "HeadTooLarge", "Oversized request head."))
            return
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        self._busy = True
        self._wire.dispatch(self, head)

    def send(self, reply: Reply | None, *, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if reply is None:
            transport.close()
            return
        keep_alive = keep_alive and not reply.close
        transport.write(reply.encode(keep_alive=keep_alive))
        if not keep_alive:
            transport.close()
            return
        if transport.get_write_buffer_size() > _MAX_UNSENT:
            self.drop()
            return
        self._busy = False
        self._wire.wait_again(self)
        if self._buffer:
            self._next()

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Wire:
    """The event loop in its own thread, serving ``handler``'s replies on ``sock``."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        refusal: Callable[[HeadError], Reply | None],
        *,
        head_timeout: float,
        idle_timeout: float,
        max_waiting: int,
        max_kept_alive: int,
        on_drop: Callable[[str], None],
    ) -> None:
        self._sock = sock
        self._handler, self._refusal, self._on_drop = handler, refusal, on_drop
        self.head_timeout, self.idle_timeout = head_timeout, idle_timeout
        self.max_waiting, self.max_kept_alive = max_waiting, max_kept_alive
        # Insertion-ordered: the first entry is the oldest. Value: the monotonic deadline.
        self._waiting: dict[_Connection, float] = {}
        self._kept_alive: dict[_Connection, float] = {}
        self._open: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle (any thread) ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="imdscreds-broker-serve", daemon=True
        )
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._thread is None:
            self._sock.close()
            self._loop.close()
            return
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(5.0)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def run_blocking(self, function: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``function`` on the loop's executor (from a coroutine on the loop)."""
        return self._loop.run_in_executor(None, function)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        # asyncio accepts up to ``backlog`` connections per turn of the loop before it reads any
        # of them; kept well under the cap, a newcomer's head is read before enough others
        # arrive to make it the oldest.
        backlog = max(16, min(1024, self.max_waiting // 4))
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Connection(self), sock=self._sock, backlog=backlog)
        )
        # ... but the kernel's queue stays at least 1,024 deep (asyncio set it to the batch): a
        # connect refused there waits a second or more for its SYN to be sent again.
        self._sock.listen(max(backlog, _LISTEN_QUEUE))
        self._server = server
        self._loop.call_later(_SWEEP_EVERY, self._sweep)
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._settle()
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    def _settle(self) -> None:
        # Connections accepted in the loop's last turns may not have reached connection_made yet:
        # a few more turns, closing whatever is open, so that no transport outlives the loop.
        for _ in range(10):
            for connection in list(self._open):
                connection.drop()
            pending = [task for task in asyncio.all_tasks(self._loop) if not task.done()]
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0.01))
            if not self._open and not pending:
                return

    def _shutdown(self) -> None:
        self._server.close()
        for connection in list(self._open):
            connection.drop()
        for task in self._tasks:
            task.cancel()
        self._loop.call_soon(self._loop.stop)

    # -- on the loop -----------------------------------------------------------------------------

    def admit(self, connection: _Connection) -> None:
        self._open.add(connection)
        if len(self._waiting) >= self.max_waiting:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            self._on_drop("Shed")
            oldest.drop()
        self._waiting[connection] = self._loop.time() + self.head_timeout

    def forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        self._waiting.pop(connection, None)
        self._kept_alive.pop(connection, None)

    def wait_again(self, connection: _Connection) -> None:
        deadline = self._loop.time() + self.idle_timeout
        if not connection.trusted:
            self._waiting[connection] = deadline
            return
        if len(self._kept_alive) >= self.max_kept_alive:
            oldest = next(iter(self._kept_alive))
            del self._kept_alive[oldest]
            oldest.drop()
        self._kept_alive[connection] = deadline

    def dispatch(self, connection: _Connection, head: bytes) -> None:
        self._waiting.pop(connection, None)
        self._kept_alive.pop(connection, None)
        try:
            request = parse_head(head)
        except HeadError as exc:
            self.refuse(connection, exc)
            return
        outcome = self._handler(request)
        if not asyncio.iscoroutine(outcome):
            connection.send(outcome, keep_alive=request.keep_alive)
            return
        connection.trusted = True
        task = self._loop.create_task(outcome)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Reply | None]) -> None:
            self._tasks.discard(finished)
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:  # named by type only: its text could carry what it should not
                log.debug("Answering ended with %s; connection closed.", type(error).__name__)
                connection.drop()
                return
            connection.send(finished.result(), keep_alive=request.keep_alive)

        task.add_done_callback(done)

    def refuse(self, connection: _Connection, error: HeadError) -> None:
        self._waiting.pop(connection, None)
        self._kept_alive.pop(connection, None)
        reply = self._refusal(error)
        connection.send(None if reply is None else Reply(reply.status, reply.document, close=True),
                        keep_alive=False)  # fmt: skip

    def _sweep(self) -> None:
        now = self._loop.time()
        for queue, reason in ((self._waiting, "HeadTimeout"), (self._kept_alive, "IdleTimeout")):
            late = [connection for connection, deadline in queue.items() if deadline <= now]
            for connection in late:
                del queue[connection]
                self._on_drop(reason)
                connection.drop()
        self._loop.call_later(_SWEEP_EVERY, self._sweep)


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (at most the hard limit);
    the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not on this platform
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
