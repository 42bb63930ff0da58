"""The doctor's first look at IMDS: a token PUT and a token-less GET, side by side, once each.

``IMDSClient`` hides what the doctor needs to see (it falls back to IMDSv1 when the token PUT goes
unanswered, and retries), so the doctor asks the two questions itself, on the wire:

- the token PUT: answered (and with what status), refused (no IMDS), or accepted and never
  answered (the hop-limit signature: the reply dies at a container's bridge);
- a token-less GET: 200 means IMDSv1 is allowed, 401 means tokens are required, 403 means the
  endpoint is off. A hop limit drops only the PUT's answer, so a GET still answers then.

Both go out at once, so a black hole costs one timeout, not two.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from imdscreds.clock import Clock
from imdscreds.config import IMDSConfig
from imdscreds.errors import MalformedResponseError
from imdscreds.imds import TOKEN_PATH, TOKEN_TTL_HEADER
from imdscreds.transport import (
    ConnectTimedOut,
    Dropped,
    NoAnswer,
    Unreachable,
    new_session,
    send,
)

__all__ = ["PROBE_GET_PATH", "Attempt", "Outcome", "ProbeResult", "probe_imds"]

PROBE_GET_PATH = "/latest/meta-data/instance-id"
# The probe's token is thrown away; a short TTL keeps it from outliving the doctor.
PROBE_TOKEN_TTL = 60

Outcome = Literal["answered", "refused", "connect-timeout", "no-answer", "dropped"]


@dataclass(frozen=True)
class Attempt:
    """One request of the probe: what came back, how long it took, and IMDS's clock."""

    method: str
    path: str
    outcome: Outcome
    elapsed: float
    status: int | None = None
    date: datetime | None = None  # IMDS's Date header
    local_time: datetime | None = None  # our wall clock when the answer arrived (mid-request)

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def connected(self) -> bool:
        """The TCP connection was made (whether or not an answer came)."""
        return self.outcome in ("answered", "no-answer", "dropped")

    def describe(self, timeout: float) -> str:
        """What happened, in words: ``answered 200 in 3 ms``, ``no answer within 1 s`` ..."""
        if self.outcome == "answered":
            return f"answered {self.status} in {self.elapsed * 1000:.0f} ms"
        return {
            "refused": "connection refused or unreachable",
            "connect-timeout": f"no connection within {timeout:g} s",
            "no-answer": f"connected, but no answer within {timeout:g} s",
            "dropped": "connected, then closed without an answer",
        }[self.outcome]


@dataclass(frozen=True)
class ProbeResult:
    """The token PUT and the token-less GET, side by side."""

    endpoint: str
    timeout: float
    put: Attempt
    get: Attempt

    @property
    def connected(self) -> bool:
        return self.put.connected or self.get.connected

    @property
    def answered(self) -> bool:
        return self.put.answered or self.get.answered

    @property
    def token(self) -> bool:
        """IMDS handed out a session token (IMDSv2 works)."""
        return self.put.status == 200

    @property
    def v1_allowed(self) -> bool | None:
        """Whether a token-less GET gets through: True, False (401), or None (cannot tell)."""
        if self.get.status == 401:
            return False
        if self.get.status in (200, 404):
            return True  # a 404 also means the request got past the token check
        return None

    @property
    def usable(self) -> bool:
        """Whether IMDSClient can read anything: with a token, or by its IMDSv1 fallback."""
        fallback = self.put.outcome == "no-answer" or self.put.status in (403, 404, 405)
        return self.token or (fallback and self.v1_allowed is True)


def probe_imds(config: IMDSConfig, clock: Clock) -> ProbeResult:
    """Send the token PUT and a token-less GET at once; classify what each got back."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="imdscreds-doctor-probe") as pool:
        put = pool.submit(
            _attempt, config, clock, "PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: str(PROBE_TOKEN_TTL)}
        )
        get = pool.submit(_attempt, config, clock, "GET", PROBE_GET_PATH, {})
        return ProbeResult(config.endpoint, config.timeout, put.result(), get.result())


def _attempt(
    config: IMDSConfig, clock: Clock, method: str, path: str, headers: dict[str, str]
) -> Attempt:
    started = clock.monotonic()
    before = clock.now()
    # The same transport as IMDSClient (no proxies, no redirects, a bounded read), one attempt.
    with new_session() as session:
        try:
            raw = send(
                session,
                method,
                config.url(path),
                headers,
                timeout=config.timeout,
                label=f"{method} {path}",
            )
        except ConnectTimedOut:
            return Attempt(method, path, "connect-timeout", clock.monotonic() - started)
        except Unreachable:
            return Attempt(method, path, "refused", clock.monotonic() - started)
        except NoAnswer:
            return Attempt(method, path, "no-answer", clock.monotonic() - started)
        except Dropped:
            return Attempt(method, path, "dropped", clock.monotonic() - started)
        except MalformedResponseError:
            # Something answered with a body far larger than IMDS ever sends: not IMDS's answer.
            return Attempt(method, path, "answered", clock.monotonic() - started)
    return Attempt(
        method,
        path,
        "answered",
        clock.monotonic() - started,
        status=raw.status,
        date=raw.date,
        local_time=before + (clock.now() - before) / 2,
    )
