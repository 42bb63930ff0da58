"""``FakeIMDS``: a real HTTP server on loopback that behaves like the EC2 instance metadata service.

It speaks IMDSv2 (session tokens with TTL rules, 401 on a missing, unknown or expired token when
tokens are required), serves role discovery on the legacy and the extended paths, issues
credentials that rotate on a clock, and plays the misconfigurations and faults that imdscreds must
survive or diagnose (see ``SCENARIOS``). Tests talk to it over real sockets, so connection reuse,
timeouts and retries are exercised as they are on an instance.

It binds loopback only (127.0.0.1 or ::1) and never connects anywhere.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.message import Message
from email.utils import format_datetime
from types import TracebackType

from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.credentials import RoleCredentials
from imdscreds.testing import _protocol as protocol
from imdscreds.testing._issuer import CredentialIssuer, IssuedSet, Terms
from imdscreds.testing._scenarios import SCENARIO_DESCRIPTIONS, SCENARIOS
from imdscreds.testing._server import Reply, Server

__all__ = [
    "SCENARIOS",
    "SCENARIO_DESCRIPTIONS",
    "FakeIMDS",
    "FakeIMDSBindError",
    "LogEntry",
    "RequestRecord",
]

# A held request (hop-limit, blackhole) is released when the server stops, or after this long.
HOLD_LIMIT = 60.0
_STOP_TIMEOUT = 5.0

LogEntry = tuple[float, str, str, int | None]
"""``(monotonic time, method, path, status)``; status is None when no response was written."""


@dataclass(frozen=True)
class RequestRecord:
    """One request as ``FakeIMDS(on_request=...)`` reports it: what a client did, never the token."""

    time: datetime
    """Wall-clock time of arrival, on the fake's clock."""
    method: str
    path: str
    """The path without its query string."""
    status: int | None
    """The status answered; None when the connection was dropped or the request held."""
    action: str
    """``respond``, ``drop`` (closed without an answer) or ``hold`` (never answered)."""
    token_sent: bool
    """Whether the request carried an ``X-aws-ec2-metadata-token`` header (its value is not kept)."""


_BIND_CAUSES = {
    errno.EADDRINUSE: "the address is already in use (another process listens on that port)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "the address is not available on this host",
    errno.EAFNOSUPPORT: "this host has no IPv6 (the address family is not supported)",
}


class FakeIMDSBindError(OSError):
    """``FakeIMDS.start()`` could not listen on its address; the message names the port and why."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.host = host
        self.port = port
        reason = _BIND_CAUSES.get(cause.errno or 0, cause.strerror or str(cause))
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.message = (
            f"the fake IMDS cannot listen on {where}: {reason}; "
            "choose another port, or port 0 for any free one"
        )

    def __str__(self) -> str:
        return self.message


@dataclass
class _Fault:
    status: int
    remaining: int
    path_prefix: str


def _loopback_family(host: str) -> socket.AddressFamily:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"FakeIMDS binds only to a loopback IP literal (127.0.0.1 or ::1), got {host!r}"
        )
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _check_scenario(name: str) -> str:
    if name not in SCENARIO_DESCRIPTIONS:
        raise ValueError(f"unknown FakeIMDS scenario {name!r}; valid: {', '.join(SCENARIOS)}")
    return name


class FakeIMDS:
    """An IMDSv2 look-alike on loopback, with scenarios, rotation on a clock, and fault injection.

    Use as a context manager (``with FakeIMDS() as imds:``) or ``start()``/``stop()``. Plain
    attributes may be changed while it runs and take effect on the next request: ``role_name``
    (a new name makes the old credentials path 404, as when an instance's role is swapped),
    ``account_id``, ``instance_id``, ``region``, ``validity``, ``rotation``, ``extended``,
    ``v1_allowed``, ``max_token_ttl``, ``latency`` (seconds of real delay before every answer),
    ``date_offset`` (seconds added to the Date header, to fake clock skew) and ``throttle`` (answer
    429 to every request beyond that many in one second of the clock, as IMDS throttles an
    instance; None, the default, never throttles; ``throttled`` counts those 429s).

    ``on_request`` is called from the server's threads with a ``RequestRecord`` for every request,
    as it is answered (``imdscreds fake-imds`` prints them); it must not block.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        scenario: str = "healthy",
        role_name: str = "imdscreds-demo-role",
        account_id: str = "123456789012",
        instance_id: str = "i-0123456789abcdef0",
        region: str = "us-east-1",
        validity: float = 6 * 3600.0,
        rotation: float = 3600.0,
        extended: bool = True,
        v1_allowed: bool = True,
        max_token_ttl: int = 21600,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self._family = _loopback_family(host)
        if not 0 <= port <= 65535:
            raise ValueError(f"FakeIMDS port must be 0..65535 (0 picks a free one), got {port}")
        if validity <= 0 or rotation <= 0:
            raise ValueError(
                f"FakeIMDS validity and rotation must be positive seconds, got {validity}, {rotation}"
            )
        if max_token_ttl < 1:
            raise ValueError(f"FakeIMDS max_token_ttl must be at least 1, got {max_token_ttl}")
        self.host = host
        self.role_name = role_name
        self.account_id = account_id
        self.instance_id = instance_id
        self.region = region
        self.validity = validity
        self.rotation = rotation
        self.extended = extended
        self.v1_allowed = v1_allowed
        self.max_token_ttl = max_token_ttl
        self.latency = 0.0
        self.throttle: int | None = None
        self.throttled = 0
        self._throttle_second = -1
        self._throttle_used = 0
        self.date_offset = 0.0
        self.on_request = on_request

        self._port = port
        self._clock: Clock = SYSTEM_CLOCK if clock is None else clock
        self._scenario = _check_scenario(scenario)
        self._lock = threading.RLock()
        self._lifecycle = threading.Lock()
        self._epoch = self._now().replace(microsecond=0)
        self._issuer = CredentialIssuer(self._epoch, self._terms())
        self._tokens = protocol.TokenStore()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._log: list[LogEntry] = []
        self._faults: list[_Fault] = []
        self._errors: list[str] = []
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopping.set()  # "not serving" until start()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeIMDS:
        """Bind and serve in background threads; after a ``stop()``, serve again on the same port."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError(f"FakeIMDS is already running at {self.endpoint}")
            stopping = threading.Event()
            try:
                server = Server(
                    (self.host, self._port),
                    family=self._family,
                    responder=self._respond,
                    date_header=self._http_date,
                    stopping=stopping,
                    hold_limit=HOLD_LIMIT,
                )
            except OSError as exc:
                raise FakeIMDSBindError(self.host, self._port, exc) from exc
            self._port = server.server_port
            thread = threading.Thread(
                target=server.serve, name=f"FakeIMDS-{self._port}", daemon=True
            )
            self._stopping = stopping
            self._server, self._thread = server, thread
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every socket, releasing held requests; idempotent."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            self._server = self._thread = None
            server.stop_serving()
            thread.join(_STOP_TIMEOUT)
            server.close_connections(_STOP_TIMEOUT)
            server.server_close()
            with self._lock:
                self._errors.extend(server.errors)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` or ``timeout`` seconds; True once stopped.

        For a foreground process (``imdscreds fake-imds``): Ctrl-C raises KeyboardInterrupt out of
        this call; catch it and ``stop()``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if step <= 0:
                return self._stopping.is_set()
            if self._stopping.wait(step):
                return True

    def __enter__(self) -> FakeIMDS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port served on (known once started)."""
        if self._port == 0:
            raise RuntimeError("FakeIMDS has no port yet: start() picks one")
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``http://[::1]:PORT`` on IPv6): the IMDS endpoint to configure."""
        host = f"[{self.host}]" if self._family == socket.AF_INET6 else self.host
        return f"http://{host}:{self.port}"

    @property
    def clock(self) -> Clock:
        """The clock that drives rotation, token expiry and the Date header."""
        return self._clock

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected errors inside the fake's own threads (a bug in the fake)."""
        server = self._server
        with self._lock:
            return [*self._errors, *([] if server is None else server.errors)]

    def __repr__(self) -> str:
        where = self.endpoint if self._server is not None else "stopped"
        return f"FakeIMDS({where}, scenario={self._scenario!r})"

    # -- behaviour and faults --------------------------------------------------------------------

    @property
    def scenario(self) -> str:
        """The scenario being played; assign one of ``SCENARIOS`` to switch while running."""
        return self._scenario

    @scenario.setter
    def scenario(self, name: str) -> None:
        self._scenario = _check_scenario(name)

    def fail_next(self, status: int, count: int = 1, path_prefix: str = "") -> None:
        """Answer the next ``count`` requests whose path starts with ``path_prefix`` with ``status``.

        Checked before anything else (scenario, token), like a failure in front of the service.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next status must be an HTTP error (400..599), got {status}")
        if count < 1:
            raise ValueError(f"fail_next count must be at least 1, got {count}")
        with self._lock:
            self._faults.append(_Fault(status, count, path_prefix))

    # -- observation -----------------------------------------------------------------------------

    @property
    def requests(self) -> Counter[tuple[str, str]]:
        """Requests seen, keyed by ``(method, path)`` with the query string stripped (a copy)."""
        with self._lock:
            return Counter(self._requests)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """How many requests matched ``path`` and ``method`` (None matches any)."""
        with self._lock:
            return sum(
                n
                for (m, p), n in self._requests.items()
                if (path is None or p == path) and (method is None or m == method)
            )

    @property
    def log(self) -> list[LogEntry]:
        """Every request in arrival order as ``(monotonic time, method, path, status or None)``."""
        with self._lock:
            return list(self._log)

    def reset_counts(self) -> None:
        """Forget the requests seen so far (``requests``, ``count``, ``log``)."""
        with self._lock:
            self._requests.clear()
            self._log.clear()

    # -- credentials -----------------------------------------------------------------------------

    def serve_credentials(
        self,
        access_key_id: str,
        secret_access_key: str,
        token: str,
        expiration: datetime,
        account_id: str | None = None,
    ) -> None:
        """Serve this set (e.g. one issued by moto's STS) from now on, until ``rotate_now()``."""
        if expiration.tzinfo is None:
            raise ValueError(f"serve_credentials needs an aware expiration, got {expiration!r}")
        with self._lock:
            self._issuer.pin(
                IssuedSet(
                    access_key_id=access_key_id,
                    secret_access_key=secret_access_key,
                    token=token,
                    issued_at=self._now(),
                    expiration=expiration.astimezone(timezone.utc),
                    role_name=self.role_name,
                    account_id=self.account_id if account_id is None else account_id,
                )
            )

    def rotate_now(self) -> None:
        """Issue a new set at once (ending any ``serve_credentials`` set); rotation restarts from now."""
        with self._lock:
            self._current_set()
            self._issuer.issue(self._now(), self._terms())

    @property
    def current_credentials(self) -> RoleCredentials:
        """The set a client gets now, as it would parse it (expired and AccountId rules applied)."""
        with self._lock:
            issued = self._current_set()
            view = self._view()
            return issued.as_role_credentials(
                expiration=protocol.served_expiration(issued, view.scenario),
                account_id=protocol.served_account_id(issued, view, extended_path=True),
            )

    @property
    def issued_credentials(self) -> list[RoleCredentials]:
        """Every set issued so far, oldest first, as issued: the secrets a test must not find leaked."""
        with self._lock:
            self._current_set()
            return [s.as_role_credentials(account_id=s.account_id) for s in self._issuer.sets]

    def _now(self) -> datetime:
        return self._clock.now().astimezone(timezone.utc)

    def _terms(self) -> Terms:
        return Terms(self.rotation, self.validity, self.role_name, self.account_id)

    def _current_set(self) -> IssuedSet:
        return self._issuer.current(self._now(), self._terms())

    # -- serving --------------------------------------------------------------------------------

    def _http_date(self) -> str:
        return format_datetime(self._now() + timedelta(seconds=self.date_offset), usegmt=True)

    def _respond(self, method: str, path: str, headers: Message) -> Reply:
        arrived = self._clock.monotonic()
        with self._lock:
            self._requests[(method, path)] += 1
            fault = self._take_fault(path)
            if fault is None:
                fault = self._take_throttle(arrived)
            if fault is not None:
                reply = protocol.error(fault)
            else:
                reply = protocol.respond(
                    method, path, headers, view=self._view(), tokens=self._tokens, now=arrived
                )
            status = reply.status if reply.action == "respond" else None
            self._log.append((arrived, method, path, status))
            on_request = self.on_request
            wall = self._now() if on_request is not None else None
        if on_request is not None and wall is not None:
            token_sent = headers.get(protocol.TOKEN_HEADER) is not None
            on_request(RequestRecord(wall, method, path, status, reply.action, token_sent))
        return replace(reply, delay=self.latency) if self.latency > 0 else reply

    def _view(self) -> protocol.View:
        return protocol.View(
            scenario=self._scenario,
            role_name=self.role_name,
            account_id=self.account_id,
            instance_id=self.instance_id,
            region=self.region,
            extended=self.extended,
            v1_allowed=self.v1_allowed,
            max_token_ttl=self.max_token_ttl,
            launched=self._epoch,
            credentials=self._current_set,
        )

    def _take_throttle(self, arrived: float) -> int | None:
        if self.throttle is None:
            return None
        second = math.floor(arrived)
        if second != self._throttle_second:
            self._throttle_second, self._throttle_used = second, 0
        self._throttle_used += 1
        if self._throttle_used <= self.throttle:
            return None
        self.throttled += 1
        return 429

    def _take_fault(self, path: str) -> int | None:
        for fault in self._faults:
            if path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.status
        return None
