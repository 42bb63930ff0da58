"""The transport: one HTTP request to IMDS, no policy (retries, tokens and errors are the client's).

``send`` returns the status, a size-capped body and the ``Date`` header, or raises one of three
exceptions that say how the request failed, which the client's retry and fallback rules need:
the TCP connection was never made (``Unreachable``; ``ConnectTimedOut`` when no SYN-ACK came), it
was made and no complete answer came in time (``NoAnswer``: the container hop-limit signature for a
token PUT, or a server that trickles its answer), or it was closed without a complete answer
(``Dropped``).

The timeout bounds the whole exchange, not each read: a socket timeout alone restarts with every
byte, so a server sending one byte just under the timeout could hold a caller for as long as it
liked. A watchdog thread shuts the socket of an exchange down when its time is up. (With a
``requests.Session`` of the caller's own, whose adapters are not ours, the status line and headers
are bounded per read only; the body always within the timeout.)

Environment proxies, ``.netrc`` and a session's proxies, headers and cookies are never used: the
request is prepared here and sent with no proxy, whatever session is passed. IMDS is link-local; a
proxy can only break it, and its token must not travel through one.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import select
import socket
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from imdscreds import _forksafe
from imdscreds._version import __version__
from imdscreds.errors import MalformedResponseError
from imdscreds.untrusted import is_plausible_instant

__all__ = [
    "MAX_BODY_BYTES",
    "ConnectTimedOut",
    "Dropped",
    "NoAnswer",
    "RawResponse",
    "Unreachable",
    "connect_failed",
    "new_session",
    "parse_http_date",
    "send",
]

# IMDS documents are a few hundred bytes; anything far larger did not come from IMDS.
MAX_BODY_BYTES = 64 * 1024
USER_AGENT = f"imdscreds/{__version__}"


class RawResponse(NamedTuple):
    """Any HTTP answer: its status, its body (at most MAX_BODY_BYTES), its Date header."""

    status: int
    body: bytes
    date: datetime | None


class Unreachable(Exception):
    """The TCP connection could not be made: refused, unreachable, or no SYN-ACK in time."""


class ConnectTimedOut(Unreachable):
    """No SYN-ACK within the timeout (as opposed to a refused or unreachable connection)."""


class NoAnswer(Exception):
    """The connection was made, but no response arrived in time."""


class Dropped(Exception):
    """The connection was made, then closed without a complete response."""


def send(
    session: requests.Session,
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    timeout: float,
    label: str,
    peer: str = "IMDS",
) -> RawResponse:
    """Send one request and read the whole answer within ``timeout`` seconds in all.

    ``label`` (``"GET /path"``) names the request in errors, ``peer`` whom it went to.
    """
    request = requests.Request(method, url, headers={"User-Agent": USER_AGENT, **headers})
    started = time.monotonic()
    exchange = _Exchange(started + timeout, started + 2 * timeout)
    _CURRENT.exchange = exchange
    try:
        try:
            response = session.send(
                request.prepare(),
                proxies={},
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
                verify=session.verify,
                cert=session.cert,
            )
        except requests.exceptions.ConnectTimeout:
            raise ConnectTimedOut(f"no connection within {timeout:g} s") from None
        except requests.exceptions.ReadTimeout:
            raise NoAnswer(f"no answer within {timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            if exchange.timed_out:
                raise NoAnswer(f"no complete answer within {timeout:g} s") from None
            if connect_failed(exc):
                raise Unreachable("connection refused or unreachable") from None
            raise Dropped("connection closed without an answer") from None
        try:
            exchange.arm(response.raw)
            body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError):
            if exchange.timed_out:
                raise NoAnswer(f"no complete answer within {timeout:g} s") from None
            raise Dropped("connection closed in the middle of an answer") from None
        finally:
            response.close()
    finally:
        _CURRENT.exchange = None
        exchange.disarm()
    if exchange.timed_out:  # the last byte came as time ran out: the answer may be cut short
        raise NoAnswer(f"no complete answer within {timeout:g} s")
    if len(body) > MAX_BODY_BYTES:
        raise MalformedResponseError(
            f"{peer}'s answer to {label} is larger than {MAX_BODY_BYTES} bytes.",
            hint=None if peer == "IMDS" else "Check that the URL points at a credentials endpoint.",
        )
    return RawResponse(response.status_code, body, parse_http_date(response.headers.get("Date")))


# -- the deadline watchdog ------------------------------------------------------------------------


class _Alarm:
    __slots__ = ("cancelled", "deadline", "exchange", "latest", "sock")

    def __init__(self, deadline: float, sock: socket.socket, exchange: _Exchange) -> None:
        self.deadline = deadline
        self.latest = exchange.latest
        self.sock = sock
        self.exchange = exchange
        self.cancelled = False


class _Exchange:
    """One request's deadline and the sockets it armed the watchdog with."""

    __slots__ = ("alarms", "deadline", "latest", "timed_out")

    def __init__(self, deadline: float, latest: float) -> None:
        self.deadline = deadline
        self.latest = latest  # the deadline's end even for a reader that is behind (see _Watchdog)
        self.alarms: list[_Alarm] = []
        self.timed_out = False

    def arm(self, raw: Any) -> None:
        """Watch the socket under ``raw`` (a connection or a response) until ``disarm``."""
        sock = _socket_of(raw)
        if sock is not None and not any(alarm.sock is sock for alarm in self.alarms):
            alarm = _Alarm(self.deadline, sock, self)
            self.alarms.append(alarm)
            _WATCHDOG.add(alarm)

    def disarm(self) -> None:
        for alarm in self.alarms:
            alarm.cancelled = True
        self.alarms.clear()


def _socket_of(raw: Any) -> socket.socket | None:
    # A urllib3 connection has .sock; a response reaches it through its connection.
    for candidate in (raw, getattr(raw, "connection", None), getattr(raw, "_connection", None)):
        sock = getattr(candidate, "sock", None)
        if isinstance(sock, socket.socket):
            return sock
    return None


class _Watchdog:
    """One daemon thread that shuts down the socket of any exchange still running at its deadline.

    Shutting a socket down wakes a thread blocked reading it, which then sees the connection
    closed. The thread starts with the first exchange and waits on a condition between them.

    An exchange whose socket holds unread bytes at its deadline is not the server's fault: its
    reader is behind (a busy process whose threads wait for the GIL), so it gets a little longer,
    up to twice its timeout. A reader waiting on the server has read all there is.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, alarm: _Alarm) -> None:
        with self._cond:
            heapq.heappush(self._heap, (alarm.deadline, next(self._order), alarm))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="imdscreds-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                alarm = heapq.heappop(self._heap)[2]
                now = time.monotonic()
                if now < alarm.latest and _unread(alarm.sock):
                    alarm.deadline = min(now + _READER_GRACE, alarm.latest)
                    heapq.heappush(self._heap, (alarm.deadline, next(self._order), alarm))
                    continue
                alarm.exchange.timed_out = True
                # Already closed means the exchange ended just as its time ran out.
                with contextlib.suppress(OSError):
                    alarm.sock.shutdown(socket.SHUT_RDWR)

    def _after_fork_in_child(self) -> None:
        # The parent's thread was not copied; the condition may have been held by it.
        self._reset()


_READER_GRACE = 0.05


def _unread(sock: socket.socket) -> bool:
    """Whether bytes (or the peer's close) wait on the socket that its reader has not read yet."""
    # A zero-timeout poll: a recv with MSG_PEEK would first wait out the socket's own timeout.
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed meanwhile: nothing left to wait for
        return False


_WATCHDOG = _Watchdog()
_forksafe.track(_WATCHDOG)
_CURRENT = threading.local()


class _WatchedResponseMixin:
    """A urllib3 connection that arms the watchdog before it waits for the status line."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        exchange: _Exchange | None = getattr(_CURRENT, "exchange", None)
        if exchange is not None:
            exchange.arm(self)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_WatchedResponseMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedResponseMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _IMDSAdapter(HTTPAdapter):
    """requests' adapter, with connections that the deadline watchdog can see."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def new_session() -> requests.Session:
    """A requests session fit for IMDS: no environment proxies, no retries, one small pool."""
    session = requests.Session()
    session.trust_env = False  # no HTTP_PROXY, no .netrc: IMDS traffic and its token stay local
    session.proxies = {}
    session.headers.update({"User-Agent": USER_AGENT})
    adapter = _IMDSAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def connect_failed(exc: BaseException) -> bool:
    """Whether requests' wrapped exception chain says the TCP connection was never made."""
    seen: BaseException | None = exc
    for _ in range(8):  # requests -> MaxRetryError -> NewConnectionError -> OSError
        if seen is None:
            break
        if isinstance(seen, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(seen, "reason", None)
        args = getattr(seen, "args", ())
        if isinstance(reason, BaseException):
            seen = reason
        elif args and isinstance(args[0], BaseException):
            seen = args[0]
        else:
            seen = seen.__cause__ or seen.__context__
    return False


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware UTC datetime; None for anything unusable, never raises.

    The header comes from whatever answers at the endpoint: a 20-digit year, an offset of a
    million hours, or a date no clock shows is no reading of the time.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        # "-0000" means UTC with the zone unknown (RFC 5322); the parser leaves such a date naive.
        instant = (
            parsed.replace(tzinfo=timezone.utc)
            if parsed.tzinfo is None
            else parsed.astimezone(timezone.utc)
        )
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return instant if is_plausible_instant(instant) else None
