"""The broker: one refresh engine for the host, served on loopback in the container-credentials format.

Every AWS SDK reads ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with the token from
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (botocore, the AWS CLI, the Go, Java and JavaScript
SDKs), so processes under the broker share its one IMDS fetch per rotation without a code change.

What a request must get past, in this order, each refusal with a body that says why and nothing
else: the connection limit; a ``Host`` that is this broker's own loopback address (a page in a
browser whose name resolves to 127.0.0.1, DNS rebinding, sends its own name); no
``X-Forwarded-For`` or ``Forwarded`` (something is relaying); the token, compared in constant
time; a request rate per second (refused requests have a bucket of their own, so a flood without
the token cannot crowd out the clients that hold it). The token and the secrets never reach a
log line.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.credentials import RoleCredentials, format_timestamp
from imdscreds.errors import ConfigError, IMDSCredsError
from imdscreds.policy import RefreshPolicy
from imdscreds.refresh import RefreshingCredentials

__all__ = ["BROKER_POLICY", "CREDENTIALS_PATH", "HEALTH_PATH", "Broker", "served_expiration"]

log = logging.getLogger("imdscreds.broker")

CREDENTIALS_PATH = "/credentials"
HEALTH_PATH = "/healthz"
# The AWS SDKs refresh container credentials 15 min before their Expiration (botocore's advisory
# window; its mandatory one is 10 min) and re-fetch on every call inside it. So the broker
# refreshes 25-30 min before expiry, and its callers (the request handlers) wait for a refresh
# from 16 min on: a client is never handed a set it would throw away at once.
CLIENT_ADVISORY_WINDOW = 900.0
CLIENT_MIN_GAP = 60.0
BROKER_POLICY = RefreshPolicy(
    advisory_window=1500.0, advisory_jitter=300.0, mandatory_window=960.0, prefetch=True
)
_FIRST_BACKOFF = (1.0, 60.0)


def served_expiration(engine: RefreshingCredentials[Any], now: datetime) -> datetime | None:
    """The ``Expiration`` to hand out for the engine's current set (None before the first).

    Sets with more than the clients' refresh window (plus a minute) left go out as IMDS issued
    them. A set with less is what the broker serves while it cannot refresh (IMDS down, or not
    rotating yet), and under static stability possibly an expired one; told the truth, every
    client would re-fetch on every call, or, past expiry, raise. So it goes out with an Expiration
    that puts the clients' next refresh a minute before the broker's use of that set ends
    (``usable_for()``), and never sooner than a minute from now.
    """
    current, left, usable = engine.peek(), engine.expires_in(), engine.usable_for()
    if current is None or left is None or usable is None:
        return None
    if left > CLIENT_ADVISORY_WINDOW + CLIENT_MIN_GAP:
        return current.expiration
    comeback = max(usable - CLIENT_MIN_GAP, CLIENT_MIN_GAP)
    return now + timedelta(seconds=CLIENT_ADVISORY_WINDOW + comeback)


class _Bucket:
    """A token bucket: ``rate`` requests a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, monotonic: Callable[[], float]) -> None:
        self._rate, self._burst, self._monotonic = rate, burst, monotonic
        self._level, self._at = burst, monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._monotonic()
            self._level = min(self._burst, self._level + (now - self._at) * self._rate)
            self._at = now
            if self._level < 1.0:
                return False
            self._level -= 1.0
            return True


class Broker:
    """The engine behind ``fetch`` and the loopback HTTP server that hands its credentials out.

    ``token`` is what requests must carry in ``Authorization`` (the content of the token file).
    ``start()`` binds and returns at once; the first fetch runs in the background, retried with
    backoff until it succeeds, after which the engine's prefetch thread keeps the set fresh.
    """

    def __init__(
        self,
        fetch: Callable[[], RoleCredentials],
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        policy: RefreshPolicy = BROKER_POLICY,
        clock: Clock = SYSTEM_CLOCK,
        max_connections: int = 64,
        rate: float = 200.0,
        burst: float = 400.0,
        idle_timeout: float = 5.0,
        first_fetch_wait: float = 5.0,
        listen_socket: socket.socket | None = None,
    ) -> None:
        if listen_socket is not None:  # handed over, bound and listening (systemd socket)
            host = str(listen_socket.getsockname()[0])
            port = 0
        if host not in ("127.0.0.1", "::1"):
            raise ConfigError(
                f"The broker binds only to loopback (127.0.0.1 or ::1), not {host!r}: it hands out "
                "the instance role's credentials.",
                setting="host",
                source="argument",
                hint="Bind 127.0.0.1 (default) or ::1.",
            )
        if not 0 <= port <= 65535:
            raise ConfigError(
                f"`{port}` is not a valid --port; expected 0..65535 (0 picks a free one).",
                setting="--port",
                source="argument",
            )
        if not token or not token.isascii() or not token.isprintable():
            raise ValueError("the broker's token must be printable ASCII")
        self.host = host
        self._token = token.encode("ascii")
        self._clock = clock
        self._fetch = fetch
        self._last_key: str | None = None
        self.engine: RefreshingCredentials[RoleCredentials] = RefreshingCredentials(
            self._fetch_and_say, policy=policy, clock=clock
        )
        self._max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._first_fetch_wait = first_fetch_wait
        self._allowed = _Bucket(rate, burst, time.monotonic)
        self._refused = _Bucket(rate, burst, time.monotonic)
        self._first_done = threading.Event()
        self._first_error: Exception | None = None
        self._stop = threading.Event()
        self._server = _Server(
            (host, port),
            family=socket.AF_INET6 if ":" in host else socket.AF_INET,
            broker=self,
            listen_socket=listen_socket,
        )
        self.port: int = self._server.server_address[1]
        netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"http://{netloc}{CREDENTIALS_PATH}"
        self._hosts = {netloc.lower(), f"localhost:{self.port}"}
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"Broker({self.url!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Broker:
        """Serve in background threads, and start the first fetch."""
        for target, name in ((self._server.serve_forever, "serve"), (self._first_fetch, "first")):
            thread = threading.Thread(target=target, name=f"imdscreds-broker-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, end every connection, stop the engine's prefetch thread."""
        self._stop.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self.engine.close()
        for thread in self._threads:
            thread.join(5.0)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_first_fetch(self, timeout: float | None = None) -> bool:
        """Wait until the first fetch has ended (either way); True if it has."""
        return self._first_done.wait(timeout)

    @property
    def bound_address(self) -> tuple[str, int]:
        """The address the listening socket is bound to, as the kernel reports it."""
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._server.open_connections()

    # -- fetching --------------------------------------------------------------------------------

    def _fetch_and_say(self) -> RoleCredentials:
        fresh = self._fetch()
        level = logging.DEBUG if fresh.access_key_id == self._last_key else logging.INFO
        self._last_key = fresh.access_key_id
        log.log(
            level,
            "Fetched credentials from IMDS (access key %s, role %s), valid until %s.",
            fresh.access_key_id,
            fresh.role_name,
            format_timestamp(fresh.expiration),
        )
        return fresh

    def _first_fetch(self) -> None:
        # Until there are credentials the engine raises to every caller; here one thread asks,
        # with backoff, and request handlers answer the last error at once meanwhile.
        retries = 0
        while not self._stop.is_set():
            try:
                self.engine.get()
            except Exception as exc:  # noqa: BLE001 - any failure is answered to clients as JSON
                self._first_error = exc
                level = logging.WARNING if retries == 0 else logging.DEBUG
                log.log(level, "No credentials from IMDS yet: %s", _describe(exc))
            else:
                self._first_error = None
                self._first_done.set()
                return
            self._first_done.set()
            retries += 1
            first, longest = _FIRST_BACKOFF
            self._stop.wait(min(longest, first * 2.0 ** min(retries - 1, 16)))

    # -- answering -------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Any) -> tuple[int, dict[str, Any]] | None:
        """The status and JSON document for one request; None: close without an answer (flood)."""
        refusal = self._refusal(method, path, headers)
        if refusal is not None:
            if not self._refused.take():
                return None
            log.debug("Refused %s %s: %s", method, path[:100], refusal[1]["Code"])
            return refusal
        if path == HEALTH_PATH:
            return (200 if self._refused.take() else 429), self._health()
        if not self._allowed.take():
            return 429, _error(
                "TooManyRequests", "More requests per second than the broker serves; retry.", ""
            )
        return self._credentials()

    def _refusal(self, method: str, path: str, headers: Any) -> tuple[int, dict[str, Any]] | None:
        host = (headers.get("Host") or "").strip().lower()
        if host not in self._hosts:
            return 403, _error(
                "HostNotAllowed",
                f"The Host header must be this broker's address ({self.url.split('/')[2]}); "
                "requests for other names are refused (DNS rebinding).",
                "Use the URL in AWS_CONTAINER_CREDENTIALS_FULL_URI as it is.",
            )
        if headers.get("X-Forwarded-For") is not None or headers.get("Forwarded") is not None:
            return 403, _error(
                "ProxiedRequest",
                "The request came through a proxy (X-Forwarded-For); the broker answers only "
                "direct requests from this host.",
                "Take the proxy out of the way (NO_PROXY=127.0.0.1).",
            )
        if method != "GET":
            return 405, _error("MethodNotAllowed", f"{method} is not served; use GET.", "")
        if path == HEALTH_PATH:
            return None
        if path != CREDENTIALS_PATH:
            return 404, _error(
                "NotFound", f"Nothing here; credentials are at {CREDENTIALS_PATH}.", ""
            )
        presented = headers.get("Authorization")
        if presented is None:
            return 401, _error(
                "MissingToken",
                "The request has no Authorization header.",
                "Set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE to the broker's token file.",
            )
        # compare_digest takes time independent of where the two differ.
        if not hmac.compare_digest(presented.encode("latin-1", "replace"), self._token):
            return 403, _error(
                "InvalidToken",
                "The Authorization header does not hold the broker's token.",
                "Read the token from the file the broker wrote (it changes when the broker "
                "restarts); AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names it.",
            )
        return None

    def _credentials(self) -> tuple[int, dict[str, Any]]:
        if self.engine.peek() is None and not self._first_done.wait(self._first_fetch_wait):
            return 503, _error(
                "CredentialsPending",
                "The broker's first fetch from IMDS has not ended yet.",
                "Retry in a few seconds.",
            )
        try:
            current = self.engine.get() if self.engine.peek() is not None else None
        except Exception as exc:  # noqa: BLE001 - answered as JSON, never raised
            self._first_error = exc
            current = None
        expiration = served_expiration(self.engine, self._clock.now())
        if current is None or expiration is None:
            return 503, _failure(self._first_error)
        document: dict[str, Any] = {
            "AccessKeyId": current.access_key_id,
            "SecretAccessKey": current.secret_access_key,
            "Token": current.token,
            "Expiration": format_timestamp(expiration),
        }
        if current.account_id:
            document["AccountId"] = current.account_id
        return 200, document

    def _health(self) -> dict[str, Any]:
        current, left, usable = (
            self.engine.peek(),
            self.engine.expires_in(),
            self.engine.usable_for(),
        )
        if current is None or left is None or usable is None:
            doc = {"Status": "no-credentials", "CredentialsHeld": False}
            if self._first_error is not None:
                doc["LastError"] = _failure(self._first_error)["Message"]
            return doc
        return {
            "Status": "ok" if left > 0 else "serving-expired",
            "CredentialsHeld": True,
            "AccessKeyId": current.access_key_id,
            "Expiration": format_timestamp(current.expiration),
            "ExpiresInSeconds": math.floor(left),
            "ServedUntil": format_timestamp(self._clock.now() + timedelta(seconds=max(usable, 0))),
        }


def _error(code: str, message: str, hint: str) -> dict[str, Any]:
    doc = {"Code": code, "Message": message}
    if hint:
        doc["Hint"] = hint
    return doc


def _failure(exc: Exception | None) -> dict[str, Any]:
    if isinstance(exc, IMDSCredsError):
        return _error(type(exc).__name__, exc.message, exc.hint)
    if exc is None:
        return _error("NoCredentials", "The broker holds no credentials.", "See its log.")
    # Anything not ours is named by its type only: its text could carry what it should not.
    return _error(
        "NoCredentials",
        f"Fetching from IMDS failed ({type(exc).__name__}).",
        "See the broker's log.",
    )


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, IMDSCredsError) else type(exc).__name__


# -- HTTP ------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # or each keep-alive request pays ~40 ms of delayed ACK
    server: _Server

    def setup(self) -> None:
        # A client that connects and sends nothing is dropped after this; others are not blocked.
        self.request.settimeout(self.server.broker.idle_timeout)
        super().setup()

    def version_string(self) -> str:
        return "imdscreds-broker"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request line is harmless, but no header ever goes to a log."""

    def _dispatch(self) -> None:
        answer = self.server.broker.answer(self.command, self.path.split("?", 1)[0], self.headers)
        if answer is None:
            self.close_connection = True
            return
        status, document = answer
        body = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == 429:
            self.send_header("Retry-After", "1")
        if status != 200:
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True  # restart on the same port while old connections sit in TIME_WAIT
    request_queue_size = 128  # the default 5 overflows when a pool of workers starts at once

    def __init__(
        self,
        address: tuple[str, int],
        *,
        family: socket.AddressFamily,
        broker: Broker,
        listen_socket: socket.socket | None = None,
    ) -> None:
        self.address_family = family
        self.broker = broker
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if listen_socket is not None:
            super().__init__(address, _Handler, bind_and_activate=False)
            self.socket.close()
            self.socket = listen_socket
            host, port = listen_socket.getsockname()[:2]
            self.server_address = (str(host), int(port))
            self.server_name, self.server_port = str(host), int(port)
            return
        try:
            super().__init__(address, _Handler)
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on {address[0]} port {address[1]}: {exc.strerror or exc}.",
                setting="--port",
                source="argument",
                hint="Another process holds the port (a broker still running?); pick another "
                "--port, or 0 for a free one.",
            ) from None

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the address; nothing here needs it.
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = len(self._open) >= self.broker._max_connections
            if not full:
                self._open.add(request)
        if full:
            # At the limit: close at once rather than queue a thread per connection.
            log.debug("Connection limit (%d) reached; closing a new one.", len(self._open))
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up or go silent are routine; nothing else is logged with its data.
        log.debug("Connection from %s ended with an error.", client_address, exc_info=False)

    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
