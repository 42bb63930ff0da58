"""The transport: one HTTP request to IMDS, no policy (retries, tokens and errors are the client's).

``send`` returns the status, a size-capped body and the ``Date`` header, or raises one of three
exceptions that say how the request failed, which the client's retry and fallback rules need:
the TCP connection was never made (``Unreachable``; ``ConnectTimedOut`` when no SYN-ACK came), it was made and no answer came in time
(``NoAnswer``: the container hop-limit signature for a token PUT), or it was closed without a
complete answer (``Dropped``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

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
) -> RawResponse:
    """Send one request; ``label`` (``"GET /path"``) names it in errors."""
    try:
        response = session.request(
            method,
            url,
            headers=headers,
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.exceptions.ConnectTimeout:
        raise ConnectTimedOut(f"no connection within {timeout:g} s") from None
    except requests.exceptions.ReadTimeout:
        raise NoAnswer(f"no answer within {timeout:g} s") from None
    except requests.exceptions.ConnectionError as exc:
        if connect_failed(exc):
            raise Unreachable("connection refused or unreachable") from None
        raise Dropped("connection closed without an answer") from None
    try:
        body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
    except (urllib3.exceptions.HTTPError, OSError):
        raise Dropped("connection closed in the middle of an answer") from None
    finally:
        response.close()
    if len(body) > MAX_BODY_BYTES:
        raise MalformedResponseError(
            f"IMDS's answer to {label} is larger than {MAX_BODY_BYTES} bytes."
        )
    return RawResponse(response.status_code, body, parse_http_date(response.headers.get("Date")))


def new_session() -> requests.Session:
    """A requests session fit for IMDS: no environment proxies, no retries, one small pool."""
    session = requests.Session()
    session.trust_env = False  # no HTTP_PROXY, no .netrc: IMDS traffic and its token stay local
    session.proxies = {}
    session.headers.update({"User-Agent": f"imdscreds/{__version__}"})
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
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
