"""``IMDSClient``: IMDSv2 GETs with a cached session token, retries, and errors that say why.

The client holds the policy; ``imdscreds.transport`` sends one request. What it does differently
from the SDKs' clients, and why:

- One token serves every GET until shortly before its TTL runs out (the SDKs' providers fetch a new
  one per refresh). A 401 means the token is stale: fetch a new one and retry once.
- Environment proxies are ignored (``trust_env=False``): IMDS is link-local, a proxy can only break
  it, and the token must never travel through one.
- A host without IMDS fails on the first connection error, without retries, so code off EC2 is not
  slowed by attempts that cannot succeed. Once IMDS has answered, connection errors are transient
  and retried with jittered exponential backoff, as are 5xx and 429.
- IMDSv1 is a fallback only when the token PUT is answered 403/404/405, or is accepted and never
  answered: the signature of a container whose PUT response hop limit is 1 (the reply is dropped at
  the bridge). A refused connection is no reason to try v1: it would only double the wait.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import requests

from imdscreds import _forksafe
from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.config import IMDSConfig
from imdscreds.errors import (
    IMDSDisabledError,
    IMDSHTTPError,
    IMDSNotFoundError,
    IMDSUnreachableError,
    MalformedResponseError,
    MetadataDisabledError,
    TokenError,
)
from imdscreds.transport import (
    Dropped,
    NoAnswer,
    RawResponse,
    Unreachable,
    new_session,
    send,
)
from imdscreds.untrusted import is_header_safe

__all__ = ["IMDSClient", "IMDSResponse"]

log = logging.getLogger("imdscreds")

TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path, not a secret
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105
MAX_TOKEN_BYTES = 4096
BACKOFF_BASE = 0.1
BACKOFF_CAP = 1.0
THROTTLE_BACKOFF_BASE = 0.5
THROTTLE_BACKOFF_CAP = 2.0

HOP_LIMIT_HINT = (
    "This is the signature of a container whose IMDS PUT response hop limit is 1: raise it to 2 "
    "(`aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2`; "
    "Terraform: metadata_options { http_put_response_hop_limit = 2 })."
)


@dataclass(frozen=True)
class IMDSResponse:
    """A 200 answer from IMDS."""

    path: str
    text: str
    date: datetime | None  # IMDS's Date header: the doctor compares it with the local clock


class _Token(NamedTuple):
    value: str
    renew_at: float  # monotonic


class IMDSClient:
    """Talks to the instance metadata service with IMDSv2; one instance is safe to share."""

    def __init__(
        self,
        config: IMDSConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        session: requests.Session | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = IMDSConfig.resolve() if config is None else config
        self._clock = clock
        self._rng = rng or random.Random()
        self._own_session = session is None
        self._session = session or new_session()
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._v1 = False  # decided to fall back to IMDSv1 for this client's life
        # The token PUT went unanswered: a hop limit if a token-less GET now answers, a dead
        # endpoint if it does not. The WARNING waits for that answer.
        self._hop_limit_suspected: str | None = None
        self._v1_refused = False  # IMDS answered 401 to a token-less GET: tokens are required
        # IMDS has answered at least once: from then on connection errors are transient.
        self._reached = False
        _forksafe.track(self)

    def __repr__(self) -> str:
        return f"IMDSClient(endpoint={self.config.endpoint!r})"

    @property
    def clock(self) -> Clock:
        """The clock this client sleeps and times its token and deadlines on."""
        return self._clock

    def close(self) -> None:
        """Close the pooled connection (only a session the client created itself)."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> IMDSClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, path: str, *, deadline: float | None = None) -> IMDSResponse:
        """GET ``path`` (e.g. ``/latest/meta-data/instance-id``); return the 200 body or raise.

        ``deadline`` (the clock's ``monotonic()``) bounds the whole call, token and retries
        included: each attempt gets at most the time left, and none starts after it.
        """
        if self.config.disabled:
            raise MetadataDisabledError(
                f"IMDS is disabled by configuration ({self.config.source_of('disabled')})."
            )
        headers = self._auth_headers(deadline)
        try:
            raw = self._request("GET", path, headers, deadline=deadline)
        except IMDSUnreachableError:
            if self._hop_limit_suspected is not None and not self._reached:
                # Neither the token PUT nor a token-less GET was answered: no hop limit, nothing
                # answers here at all. Try a token again next time.
                self._hop_limit_suspected = None
                self._v1 = False
            raise
        if self._hop_limit_suspected is not None:
            if raw.status != 401:  # a 401 means tokens are required: the error below says it
                log.warning(
                    "%s Falling back to IMDSv1. %s", self._hop_limit_suspected, HOP_LIMIT_HINT
                )
            self._hop_limit_suspected = None
        if raw.status == 401:
            # A stale or foreign token, or a token-less GET where IMDS requires tokens: one new token,
            # one more try.
            self._forget_token(headers.get(TOKEN_HEADER))
            if TOKEN_HEADER not in headers:
                self._v1_refused = True
                self._v1 = False
            headers = self._auth_headers(deadline)
            raw = self._request("GET", path, headers, deadline=deadline)
        if raw.status == 200:
            return IMDSResponse(path=path, text=_decode(raw.body, path), date=raw.date)
        raise self._status_error(path, raw.status, tokenless=TOKEN_HEADER not in headers)

    # -- token ---------------------------------------------------------------------------------

    def _auth_headers(self, deadline: float | None) -> dict[str, str]:
        headers = self._cached_auth_headers()
        if headers is not None:
            return headers
        with self._lock:
            headers = self._cached_auth_headers()  # another thread may have fetched it meanwhile
            if headers is not None:
                return headers
            value = self._fetch_token(deadline)
            return {} if value is None else {TOKEN_HEADER: value}

    def _cached_auth_headers(self) -> dict[str, str] | None:
        token = self._token
        if token is not None and self._clock.monotonic() < token.renew_at:
            return {TOKEN_HEADER: token.value}
        return {} if self._v1 else None

    def _forget_token(self, value: str | None) -> None:
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _fetch_token(self, deadline: float | None) -> str | None:
        """PUT for a token; None means: go on with IMDSv1."""
        ttl = self.config.token_ttl
        started = self._clock.monotonic()
        try:
            raw = self._request(
                "PUT",
                TOKEN_PATH,
                {TOKEN_TTL_HEADER: str(ttl)},
                retry_no_answer=False,
                deadline=deadline,
            )
        except NoAnswer:
            self._token_fallback(
                "IMDS accepted the connection but never answered the token request "
                f"(PUT {TOKEN_PATH}, {self.config.timeout:g} s).",
                hint=HOP_LIMIT_HINT,
                hop_limit=True,
            )
            return None
        if raw.status == 200:
            value = _decode(raw.body, TOKEN_PATH).strip()
            # The token goes back in a header of every GET: CR/LF in it would split that header
            # (requests refuses to send it at all). Never quoted: it is a credential.
            if len(raw.body) > MAX_TOKEN_BYTES or not is_header_safe(value):
                raise TokenError(
                    "IMDS answered the token request with a token that cannot be sent back: "
                    f"empty, over {MAX_TOKEN_BYTES} bytes, or not all visible ASCII "
                    f"({len(raw.body)} bytes).",
                    hint=MalformedResponseError.default_hint,
                )
            # Renew ahead of expiry, so a GET never carries a token that dies in flight.
            margin = min(300.0, ttl * 0.1)
            self._token = _Token(value, started + ttl - margin)
            return value
        if raw.status in (403, 404, 405):
            why = {
                403: "IMDS refused the token request (403): the metadata endpoint is turned off, "
                "or a proxy in the way added X-Forwarded-For.",
                404: "The token request found no IMDSv2 endpoint (404).",
                405: "Something in front of IMDS does not allow the token PUT (405), as some "
                "metadata proxies do.",
            }[raw.status]
            if raw.status == 403 and self.config.v1_disabled:
                raise IMDSDisabledError(why)
            self._token_fallback(
                why,
                hint="Check for a metadata proxy between this process and IMDS "
                "(`imdscreds doctor` names it).",
                hop_limit=False,
            )
            return None
        if raw.status == 400:
            raise TokenError(
                f"IMDS rejected the token request (400) for the TTL {ttl}.",
                hint="The token TTL must be 1..21600 seconds.",
            )
        raise self._status_error(TOKEN_PATH, raw.status, tokenless=False)

    def _token_fallback(self, why: str, *, hint: str, hop_limit: bool) -> None:
        if self.config.v1_disabled or self._v1_refused:
            reason = (
                f"IMDSv1 fallback is disabled ({self.config.source_of('v1_disabled')})"
                if self.config.v1_disabled
                else "IMDS requires tokens (it refused a token-less request)"
            )
            raise TokenError(f"{why} {reason}, so no request can be made.", hint=hint)
        if hop_limit:
            self._hop_limit_suspected = why
        else:
            log.info("%s Falling back to IMDSv1.", why)
        self._v1 = True

    # -- transport -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        retry_no_answer: bool = True,
        deadline: float | None = None,
    ) -> RawResponse:
        """Send with retries; return the final status, or raise when no answer ever came."""
        attempts = self.config.attempts
        failure: Exception | None = None
        last: RawResponse | None = None
        throttled = False
        for attempt in range(attempts):
            if attempt:
                pause = self._backoff(attempt, throttled=throttled)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - self._clock.monotonic()))
                self._clock.sleep(pause)
            throttled = False
            timeout = self.config.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - self._clock.monotonic())
                if timeout <= 0:
                    if failure is None and last is not None:
                        return last
                    raise self._out_of_time(method, path, failure)
            try:
                raw = self._send(method, path, headers, timeout)
            except Unreachable as exc:
                if not self._reached:
                    # Nothing has ever answered here: most likely no IMDS at all. One timeout only.
                    raise self._unreachable(exc) from None
                failure = exc
                continue
            except NoAnswer as exc:
                if not retry_no_answer:
                    raise
                failure = exc
                if not self._reached:
                    # Connections are accepted but nothing has ever answered: not an IMDS that is
                    # busy for a moment. One timeout only, so the credential chain moves on.
                    break
                continue
            except Dropped as exc:
                failure = exc
                continue
            self._reached = True
            if raw.status == 429 or 500 <= raw.status <= 599:
                failure = None
                last = raw
                throttled = raw.status == 429
                continue
            return raw
        if failure is None and last is not None:
            return last
        if isinstance(failure, Unreachable):
            raise self._unreachable(failure) from None
        if not self._reached:
            raise IMDSUnreachableError(
                f"Nothing answers as IMDS at {self.config.endpoint} "
                f"({self.config.source_of('endpoint')}): {method} {path}: {failure}"
                + (", and the token request was not answered either." if self._v1 else "."),
                hint="Something accepts connections there but does not answer: check that the "
                "endpoint is IMDS, or that a firewall or proxy does not swallow the requests; "
                "run `imdscreds doctor`.",
            )
        raise IMDSUnreachableError(
            f"IMDS at {self.config.endpoint} did not answer {method} {path} "
            f"({attempts} attempt(s), {self.config.timeout:g} s each): {failure}",
            hint="IMDS may be overloaded or throttling this instance; raise "
            "AWS_METADATA_SERVICE_TIMEOUT or AWS_METADATA_SERVICE_NUM_ATTEMPTS, and run "
            "`imdscreds doctor`.",
        )

    def _backoff(self, attempt: int, *, throttled: bool) -> float:
        if throttled:
            # IMDS limits requests per instance per second: waits that can end within the same
            # second would only be refused again, so a 429 waits at least half its ceiling.
            ceiling = min(THROTTLE_BACKOFF_CAP, THROTTLE_BACKOFF_BASE * 2.0 ** (attempt - 1))
            return ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        return self._rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1)))

    def _out_of_time(
        self, method: str, path: str, failure: Exception | None
    ) -> IMDSUnreachableError:
        why = f": {failure}" if failure is not None else ""
        return IMDSUnreachableError(
            f"IMDS at {self.config.endpoint} did not answer {method} {path} before the fetch's "
            f"deadline ({self.config.total_timeout:g} s in all){why}.",
            hint="IMDS may be overloaded or throttling this instance, or something slow answers in "
            "its place; raise AWS_METADATA_SERVICE_TIMEOUT or AWS_METADATA_SERVICE_NUM_ATTEMPTS, "
            "and run `imdscreds doctor`.",
        )

    def _unreachable(self, exc: Exception) -> IMDSUnreachableError:
        return IMDSUnreachableError(
            f"No instance metadata service at {self.config.endpoint} "
            f"({self.config.source_of('endpoint')}): {exc}."
        )

    def _send(self, method: str, path: str, headers: dict[str, str], timeout: float) -> RawResponse:
        return send(
            self._session,
            method,
            self.config.url(path),
            headers,
            timeout=timeout,
            label=f"{method} {path}",
        )

    def _status_error(self, path: str, status: int, *, tokenless: bool) -> Exception:
        if status == 403:
            return IMDSDisabledError(
                f"IMDS refused GET {path} (403): the metadata endpoint is off."
            )
        if status == 404:
            return IMDSNotFoundError(f"IMDS has no {path} (404).", status=404, path=path, hint="")
        if status == 401:
            why = "a token-less request (IMDSv1)" if tokenless else "a fresh session token"
            return TokenError(
                f"IMDS refused {why} for GET {path} (401).",
                hint=HOP_LIMIT_HINT if self._v1_refused else "Run `imdscreds doctor`.",
            )
        if status == 429:
            return IMDSHTTPError(
                f"IMDS throttled GET {path} (429) on every one of {self.config.attempts} attempts.",
                status=status,
                path=path,
                hint="Too many IMDS calls from this instance: share one credentials provider "
                "per process (imdscreds.install()) instead of one per thread or request.",
            )
        if 500 <= status <= 599:
            return IMDSHTTPError(
                f"IMDS answered {status} to {path} on every one of {self.config.attempts} "
                "attempts.",
                status=status,
                path=path,
                hint="IMDS errors are usually brief; the next refresh retries.",
            )
        return IMDSHTTPError(
            f"IMDS answered an unexpected {status} to {path}.",
            status=status,
            path=path,
            hint=MalformedResponseError.default_hint,
        )

    def _after_fork_in_child(self) -> None:
        # The parent's pooled socket and a lock some other parent thread may have held are not
        # ours. A caller's session stays usable after close(): its pools fill again on demand.
        self._lock = threading.Lock()
        self._session.close()
        if self._own_session:
            self._session = new_session()


def _decode(body: bytes, path: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponseError(f"IMDS's answer to {path} is not UTF-8 text.") from None
