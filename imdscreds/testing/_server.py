"""The HTTP layer under ``FakeIMDS``: a threaded HTTP/1.1 server that only moves bytes.

What to answer is decided by a ``Responder`` (the fake's logic) and handed back as a ``Reply``; this
module writes it, drops the connection, or holds the request unanswered until the server stops.
The server tracks every accepted connection so ``close()`` can end them all (keep-alive clients
and held requests included) and no socket is left for the garbage collector to warn about.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["Reply", "Responder", "Server"]

# A request body is never needed; a large one is drained only up to this size, else the
# connection is closed after the reply so the next request cannot start mid-body.
_MAX_DRAIN = 1 << 20


@dataclass(frozen=True)
class Reply:
    """What to do with one request: answer it, drop the connection, or hold it unanswered."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    action: Literal["respond", "drop", "hold"] = "respond"
    delay: float = 0.0


Responder = Callable[[str, str, Message], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY a keep-alive client pays the Nagle/delayed-ACK stall on every request.
    disable_nagle_algorithm = True
    server: Server

    def version_string(self) -> str:
        return "EC2ws"

    def date_time_string(self, timestamp: float | None = None) -> str:
        return self.server.date_header()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test server that writes to stderr drowns the test output."""

    def _dispatch(self) -> None:
        self._drain_body()
        reply = self.server.responder(self.command, self.path.split("?", 1)[0], self.headers)
        stopping = self.server.stopping
        if reply.delay > 0 and stopping.wait(reply.delay):
            self.close_connection = True
            return
        if reply.action == "hold":
            stopping.wait(self.server.hold_limit)
            self.close_connection = True
            return
        if reply.action == "drop":
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def _drain_body(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > _MAX_DRAIN:
            self.close_connection = True
        elif length > 0:
            self.rfile.read(length)


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its connections and stays quiet."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    # The default backlog of 5 overflows when a benchmark's threads all connect at once, and an
    # overflowed SYN is retried only after a second.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        family: socket.AddressFamily,
        responder: Responder,
        date_header: Callable[[], str],
        stopping: threading.Event,
        hold_limit: float,
    ) -> None:
        self.address_family = family
        self.responder = responder
        self.date_header = date_header
        self.stopping = stopping
        self.hold_limit = hold_limit
        self.errors: list[str] = []
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        # Made before binding: a failed bind calls server_close(), which closes these too.
        self._wake_reader, self._wake_writer = socket.socketpair()
        try:
            super().__init__(address, _Handler)
        except BaseException:
            self._wake_reader.close()
            self._wake_writer.close()
            raise

    def serve(self) -> None:
        """Accept connections until ``stop_serving()``.

        Like ``serve_forever`` but woken through a socket pair instead of polling, so stopping
        takes no poll interval: a suite starts and stops hundreds of these.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()

    def stop_serving(self) -> None:
        """Make ``serve()`` return (and every held request give up) now."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _accept(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, client_address)
        except Exception:  # noqa: BLE001 - e.g. no thread could be started: refuse this one
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take seconds
        # in a sandbox and that a test has no use for.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"FakeIMDS-conn-{client_address[1]}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - recorded by handle_error, never raised in a server thread
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        # A client that hung up (a test's short read timeout, a dropped keep-alive) is routine.
        if isinstance(error, (ConnectionError, TimeoutError)) or (
            isinstance(error, OSError) and self.stopping.is_set()
        ):
            return
        self.errors.append(traceback.format_exc())

    def close_connections(self, timeout: float) -> None:
        """End every open connection and wait (up to ``timeout`` s) for its thread to finish."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            # Wakes a handler blocked reading the next keep-alive request: it sees end of stream.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for sock, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                sock.close()
