"""The broker: one refresh engine for the host, served on loopback in the container-credentials format.

Every AWS SDK reads ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with the token from
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (botocore, the AWS CLI, the Go, Java and JavaScript
SDKs), so processes under the broker share its one IMDS fetch per rotation without a code change.

What a request must get past, in this order, each refusal with a body that says why and nothing
else: the wire's limits (``wire.py``: the whole head within ``head_timeout`` of accept, at most
``MAX_HEAD`` bytes, strictly framed, no body, one ``Host``; at ``max_connections`` waiting heads
the oldest is dropped); a ``Host`` that is this broker's own loopback address (a page in a
browser whose name resolves to 127.0.0.1, DNS rebinding, sends its own name); no
``X-Forwarded-For`` or ``Forwarded`` (something is relaying); no ``Origin`` (a web page);
GET only; the token, compared in constant
time; a request rate per second (refused requests have a bucket of their own, so a flood without
the token cannot crowd out the clients that hold it). The token and the secrets never reach a
log line.
"""

from __future__ import annotations

import hmac
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from imdscreds.broker.stats import Counters
from imdscreds.broker.wire import (
    MAX_HEAD,
    HeadError,
    Reply,
    Request,
    Wire,
    raise_open_files_limit,
)
from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.credentials import RoleCredentials, format_timestamp
from imdscreds.errors import ConfigError, IMDSCredsError
from imdscreds.policy import RefreshPolicy
from imdscreds.refresh import RefreshingCredentials

__all__ = [
    "BROKER_POLICY",
    "CREDENTIALS_PATH",
    "HEALTH_PATH",
    "METRICS_PATH",
    "Broker",
    "served_expiration",
]

log = logging.getLogger("imdscreds.broker")

CREDENTIALS_PATH = "/credentials"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
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
# Kept-alive connections of clients that have had credentials, beyond which the oldest idle one
# closes; and file descriptors kept free for everything else (IMDS, the token file, logs).
_MAX_KEPT_ALIVE = 256
_SPARE_FILES = 256
# An Expiration further than this beyond the engine's own end for the set (which the engine caps
# at 12 h, a role session's longest) is not passed on: the engine's end is served instead.
_EXPIRATION_SLACK = timedelta(seconds=1)


def served_expiration(engine: RefreshingCredentials[Any], now: datetime) -> datetime | None:
    """The ``Expiration`` to hand out for the engine's current set (None before the first).

    Sets with more than the clients' refresh window (plus a minute) left go out as IMDS issued
    them, unless IMDS's Expiration is later than the engine's end for the set (which it caps at
    12 h, the longest a role session lives): then the engine's end, so that a far-future
    Expiration (9998-12-31) does not keep clients on the set after the broker has left it. A set
    with less is what the broker serves while it cannot refresh (IMDS down, or not
    rotating yet), and under static stability possibly an expired one; told the truth, every
    client would re-fetch on every call, or, past expiry, raise. So it goes out with an Expiration
    that puts the clients' next refresh a minute before the broker's use of that set ends
    (``usable_for()``), and never sooner than a minute from now.
    """
    current, left, usable = engine.peek(), engine.expires_in(), engine.usable_for()
    if current is None or left is None or usable is None:
        return None
    if left > CLIENT_ADVISORY_WINDOW + CLIENT_MIN_GAP:
        engine_end = now + timedelta(seconds=left)
        if current.expiration > engine_end + _EXPIRATION_SLACK:
            return engine_end
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

    ``head_timeout``: seconds from accept to a complete request head; ``idle_timeout``: seconds
    a kept-alive connection may wait for its next head; ``max_connections``: connections waiting
    for a head at once (at the cap a new one drops the oldest waiting).
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
        max_connections: int = 4096,
        rate: float = 200.0,
        burst: float = 400.0,
        idle_timeout: float = 5.0,
        first_fetch_wait: float = 5.0,
        listen_socket: socket.socket | None = None,
        head_timeout: float = 3.0,
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
        if max_connections < 1 or head_timeout <= 0 or idle_timeout <= 0:
            raise ValueError("max_connections, head_timeout and idle_timeout must be positive")
        self.host = host
        self._token = token.encode("ascii")
        self._clock = clock
        self._fetch = fetch
        self._last_key: str | None = None
        self.counters = Counters()
        self.engine: RefreshingCredentials[RoleCredentials] = RefreshingCredentials(
            self._fetch_and_say, policy=policy, clock=clock
        )
        self._max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self._first_fetch_wait = first_fetch_wait
        self._allowed = _Bucket(rate, burst, time.monotonic)
        self._refused = _Bucket(rate, burst, time.monotonic)
        self._first_done = threading.Event()
        self._first_error: Exception | None = None
        self._stop = threading.Event()
        if listen_socket is not None:
            listen_socket.setblocking(False)
            self._socket = listen_socket
        else:
            self._socket = _listen(host, port)
        self.port: int = self._socket.getsockname()[1]
        netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"http://{netloc}{CREDENTIALS_PATH}"
        self._hosts = {netloc.lower(), f"localhost:{self.port}"}
        self._wire = Wire(
            self._socket,
            self._handle,
            self._head_refusal,
            head_timeout=head_timeout,
            idle_timeout=idle_timeout,
            max_waiting=max_connections,
            max_kept_alive=_MAX_KEPT_ALIVE,
            on_drop=self.counters.count_dropped,
        )
        self._read = self.engine.async_reader(lambda: self._wire.run_blocking(self.engine.get))
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"Broker({self.url!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Broker:
        """Serve on the event loop's thread, and start the first fetch."""
        # Each waiting connection is a file descriptor: make room for the cap, or lower the cap.
        wanted = self._max_connections + _MAX_KEPT_ALIVE + _SPARE_FILES
        limit = raise_open_files_limit(wanted)
        if limit < wanted:
            self._wire.max_waiting = max(limit - _MAX_KEPT_ALIVE - _SPARE_FILES, 16)
            log.info(
                "Open files are limited to %d (ulimit -n): at most %d connections wait for a "
                "request head at once.",
                limit,
                self._wire.max_waiting,
            )
        self._wire.start()
        thread = threading.Thread(target=self._first_fetch, name="imdscreds-broker-first")
        thread.daemon = True
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, end every connection, stop the engine's prefetch thread."""
        self._stop.set()
        self._wire.stop()
        self._socket.close()
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
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._wire.open_connections

    # -- fetching --------------------------------------------------------------------------------

    def _fetch_and_say(self) -> RoleCredentials:
        try:
            fresh = self._fetch()
        except BaseException:
            self.counters.count_fetch(ok=False)
            raise
        self.counters.count_fetch(ok=True)
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
        """The status and JSON document for one request; None: close without an answer (flood).

        Blocks while a refresh is due; the server itself answers on its event loop instead."""
        refusal = self._refusal(method, path, headers)
        if refusal is not None:
            if not self._refused.take():
                return None
            log.debug("Refused %s %s: %s", method, path[:100], refusal[1]["Code"])
            return refusal
        if path in (HEALTH_PATH, METRICS_PATH):
            return (200 if self._refused.take() else 429), self._health()
        if not self._allowed.take():
            return 429, _TOO_MANY
        return self._credentials()

    def _handle(self, request: Request) -> Reply | Coroutine[Any, Any, Reply | None] | None:
        # On the event loop: everything but a refresh is answered here, at once.
        method, path = request.method, request.path
        refusal = self._refusal(method, path, request.headers)
        if refusal is not None:
            return self._refuse(*refusal, what=f"{method} {path[:100]}")
        if path in (HEALTH_PATH, METRICS_PATH):
            status = 200 if self._refused.take() else 429
            if path == METRICS_PATH:
                return Reply(status, text=self._metrics(), content_type=_PROMETHEUS)
            return Reply(status, self._health())
        if not self._allowed.take():
            self.counters.count_refused("TooManyRequests")
            return Reply(429, _TOO_MANY, close=True)
        return self._serve_credentials()

    def _refuse(self, status: int, document: dict[str, Any], *, what: str) -> Reply | None:
        self.counters.count_refused(document["Code"])
        if not self._refused.take():
            self.counters.count_dropped("RefusedFlood")
            return None
        log.debug("Refused %s: %s", what, document["Code"])
        return Reply(status, document, close=True)

    def _head_refusal(self, error: HeadError) -> Reply | None:
        return self._refuse(
            error.status, _error(error.code, error.message, _HEAD_HINTS[error.code]), what="a head"
        )

    async def _serve_credentials(self) -> Reply | None:
        if self.engine.peek() is None:
            status, document = await self._wire.run_blocking(self._credentials)
        else:
            try:
                current: RoleCredentials | None = await self._read()
            except Exception as exc:  # noqa: BLE001 - answered as JSON, never raised
                self._first_error = exc
                current = None
            status, document = self._document(current)
        if status == 200:
            self.counters.count_served()
        else:
            self.counters.count_unavailable()
        return Reply(status, document, close=status != 200)

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
        if headers.get("Origin") is not None:
            # A web page's request (the SDKs send no Origin); no answer carries an
            # Access-Control-Allow-Origin either, so a page could not read one anyway.
            return 403, _error(
                "BrowserRequest",
                "The request carries an Origin header: it comes from a web page, and the broker "
                "answers only the SDKs on this host.",
                "",
            )
        if method != "GET":
            return 405, _error("MethodNotAllowed", f"{method} is not served; use GET.", "")
        if path in (HEALTH_PATH, METRICS_PATH):
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
        return self._document(current)

    def _document(self, current: RoleCredentials | None) -> tuple[int, dict[str, Any]]:
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

    def _operator_view(self) -> tuple[float | None, bool]:
        """Seconds since the last good fetch, and whether the set served is stale (the last
        fetch failed, or it has expired and is served under static stability)."""
        left = self.engine.expires_in()
        held = self.engine.peek() is not None
        stale = held and (self.counters.last_fetch_failed or (left is not None and left <= 0))
        return self.counters.seconds_since_good_fetch(), stale

    def _health(self) -> dict[str, Any]:
        current, left, usable = (
            self.engine.peek(),
            self.engine.expires_in(),
            self.engine.usable_for(),
        )
        since, stale = self._operator_view()
        operator: dict[str, Any] = {
            "SecondsSinceLastGoodFetch": None if since is None else math.floor(since),
            "ServingStale": stale,
            "ConnectionsOpen": self._wire.open_connections,
            "ConnectionsWaitingForHead": self._wire.waiting,
            "Counters": self.counters.document(),
        }
        if current is None or left is None or usable is None:
            doc: dict[str, Any] = {"Status": "no-credentials", "CredentialsHeld": False}
            if self._first_error is not None:
                doc["LastError"] = _failure(self._first_error)["Message"]
            return {**doc, **operator}
        return {
            "Status": "ok" if left > 0 else "serving-expired",
            "CredentialsHeld": True,
            "AccessKeyId": current.access_key_id,
            "Expiration": format_timestamp(current.expiration),
            "ExpiresInSeconds": math.floor(left),
            "ServedUntil": format_timestamp(self._clock.now() + timedelta(seconds=max(usable, 0))),
            **operator,
        }

    def _metrics(self) -> str:
        since, stale = self._operator_view()
        left = self.engine.expires_in()
        return self.counters.prometheus(
            {
                "credentials_held": ("1 if the broker holds a set.", float(left is not None)),
                "credentials_expires_in_seconds": (
                    "Seconds until the held set expires (negative: expired, served while IMDS is "
                    "down).",
                    math.nan if left is None else math.floor(left),
                ),
                "serving_stale": (
                    "1 if the set served is stale (last fetch failed, or expired).",
                    float(stale),
                ),
                "seconds_since_last_good_fetch": (
                    "Seconds since the last fetch from IMDS that succeeded.",
                    math.nan if since is None else round(since, 1),
                ),
                "connections_open": ("Connections open.", self._wire.open_connections),
                "connections_waiting_for_head": (
                    "Connections that have not yet sent a complete request head.",
                    self._wire.waiting,
                ),
            }
        )


_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_TOO_MANY = {
    "Code": "TooManyRequests",
    "Message": "More requests per second than the broker serves; retry.",
}
_HEAD_HINTS = {
    "BadRequest": "Send a plain HTTP/1.1 GET, as the AWS SDKs do.",
    "DuplicateHost": "Send one Host header: the broker's address.",
    "RequestBody": "Send GET /credentials without a body.",
    "HeadTooLarge": f"A request head is at most {MAX_HEAD} bytes; send only the SDK's headers.",
}


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Restart on the same port while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        # A deep backlog: a pool of workers starting at once, or a flood of connections, must not
        # overflow it before the event loop accepts.
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {host} port {port}: {exc.strerror or exc}.",
            setting="--port",
            source="argument",
            hint="Another process holds the port (a broker still running?); pick another "
            "--port, or 0 for a free one.",
        ) from None
    sock.setblocking(False)
    return sock


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
