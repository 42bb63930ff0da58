"""Static stability: serving the last credentials while IMDS fails, and sharing a first failure."""

from __future__ import annotations

import logging
import math
from typing import NoReturn, TypeVar

from imdscreds.credentials import RoleCredentials, format_timestamp
from imdscreds.errors import IMDSCredsError
from imdscreds.refresh import schedule
from imdscreds.refresh._snapshot import Published, Snapshot

__all__ = ["StaticStability", "describe", "raise_copy", "when"]

log = logging.getLogger("imdscreds.refresh")

V = TypeVar("V")


class StaticStability(Published[V]):
    """What the engine does after an attempt that brought no usable credentials."""

    # Guarded by _lock:
    _warned: bool  # this outage's one WARNING is out
    # Why the last attempt, made while there were no credentials yet, failed, and when
    # (monotonic) the next such attempt may be made:
    _first_error: Exception | None
    _first_retry_at: float
    _first_failures: int

    def _raise_while_backing_off(self) -> None:
        error = self._first_error
        if error is not None and self._monotonic() < self._first_retry_at:
            raise_copy(error)

    def _first_failed(self, exc: Exception) -> None:
        self._first_error = exc
        self._first_failures += 1
        wait = schedule.backoff(self._first_failures, self.policy.first_fetch_backoff, self._rng)
        self._first_retry_at = self._monotonic() + wait
        log.debug(
            "Fetching the first credentials failed (%d in a row); callers get the same error "
            "for %.1f s, then the next caller tries again.",
            self._first_failures,
            wait,
        )

    def _serve_last(
        self,
        prev: Snapshot[V] | None,
        now: float,
        why: str,
        expired: tuple[RoleCredentials, float] | None,
    ) -> Snapshot[V]:
        """After an attempt that brought no usable credentials: keep serving what we have."""
        if prev is None:
            assert expired is not None
            credentials, expires_at = expired
            mandatory_at, retries, extended_until = expires_at, 1, -math.inf
        else:
            credentials, expires_at = prev.credentials, prev.expires_at
            mandatory_at, retries = prev.mandatory_at, prev.retries + 1
            extended_until = prev.usable_until if prev.expires_at <= now else -math.inf
            if expired is not None and expired[0].expiration > credentials.expiration:
                credentials, expires_at = expired
        if now < expires_at:
            attempt_at = schedule.next_attempt(
                now,
                retries,
                self.policy,
                self._rng,
                mandatory_at=mandatory_at,
                expires_at=expires_at,
            )
            level = logging.DEBUG if prev is not None and prev.failing else logging.INFO
            log.log(
                level,
                "Refreshing credentials failed: %s Still serving credentials (access key %s) "
                "valid until %s; trying again in %.0f s.",
                why,
                credentials.access_key_id,
                when(credentials),
                attempt_at - now,
            )
            return self._publish(
                credentials,
                attempt_at=attempt_at,
                mandatory_at=mandatory_at,
                expires_at=expires_at,
                usable_until=expires_at,
                retries=retries,
                failing=True,
            )
        # Static stability: expired credentials beat no credentials while IMDS cannot give new
        # ones (AWS may still accept them for a while, or this host's clock is wrong).
        attempt_at, usable_until = schedule.extension(
            now, extended_until, retries, self.policy, self._rng
        )
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(
            level,
            "IMDS unavailable: %s Serving credentials (access key %s) that expired at %s for up "
            "to %.0f min more, retrying IMDS with backoff (at most %.0f s apart).",
            why,
            credentials.access_key_id,
            when(credentials),
            (usable_until - now) / 60,
            self.policy.retry_backoff[1],
        )
        return self._publish(
            credentials,
            attempt_at=attempt_at,
            mandatory_at=mandatory_at,
            expires_at=expires_at,
            usable_until=usable_until,
            retries=retries,
            failing=True,
        )


def raise_copy(error: Exception) -> NoReturn:
    """Raise ``error`` for one of many waiting callers."""
    # Each waiting caller gets an exception object of its own: raising one object in many threads
    # would splice their tracebacks together.
    if isinstance(error, IMDSCredsError):
        copy = type(error).__new__(type(error))
        copy.args = error.args
        copy.__dict__.update(error.__dict__)
        copy.__cause__ = error.__cause__
        copy.__suppress_context__ = error.__suppress_context__
        raise copy
    raise error


def when(credentials: RoleCredentials) -> str:
    """The credentials' expiration, for a log line."""
    return format_timestamp(credentials.expiration)


def describe(exc: Exception) -> str:
    """A failed fetch's exception as one sentence for a log line."""
    # Our errors carry their hint and never a secret; anything else is named by its type.
    text = str(exc).strip()
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described if described.endswith(".") else described + "."
