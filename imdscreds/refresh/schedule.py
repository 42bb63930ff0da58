"""The refresh schedule: when to fetch next, as pure arithmetic on monotonic seconds.

Each function takes the present and the credentials' deadlines as plain numbers, the
:class:`RefreshPolicy`, and the random source its jitter is drawn from (anything with
``uniform(a, b)``); none reads a clock, takes a lock or starts a thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from imdscreds.policy import RefreshPolicy

__all__ = [
    "IMDS_ROTATION_PROMISE",
    "LONGEST_LIFE",
    "PROMISE_JITTER",
    "Jitter",
    "backoff",
    "caller_deadline",
    "extension",
    "fresh_deadlines",
    "life_left",
    "next_attempt",
    "same_again_deadlines",
]

# IMDS: "new credentials are available at least five minutes before the old ones expire".
IMDS_ROTATION_PROMISE = 300.0
PROMISE_JITTER = 60.0
# No AWS role credentials live longer than 12 h (a role's longest session); a server Date far in
# the past must not make a set look good for longer.
LONGEST_LIFE = 43200.0


class Jitter(Protocol):
    """Where jitter is drawn from: :class:`random.Random`, or a test's fixed draw."""

    def uniform(self, a: float, b: float, /) -> float: ...


def backoff(retries: int, bounds: tuple[float, float], rng: Jitter) -> float:
    """Seconds to wait after ``retries`` failed attempts in a row: doubling from ``bounds[0]``,
    capped at ``bounds[1]``, with "equal jitter" (at least half the ceiling, so retries never
    bunch up near zero)."""
    first, longest = bounds
    ceiling = min(longest, first * 2.0 ** min(retries - 1, 32))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


def next_attempt(
    now: float,
    retries: int,
    policy: RefreshPolicy,
    rng: Jitter,
    *,
    mandatory_at: float,
    expires_at: float,
) -> float:
    """When to try again after ``retries`` attempts that brought no new credentials."""
    at = now + backoff(retries, policy.retry_backoff, rng)
    # Never let a backoff skip the start of the mandatory window or the expiry itself: each
    # changes what callers do, so each gets an attempt on time.
    if now < mandatory_at:
        return min(at, mandatory_at)
    if now < expires_at:
        return min(at, expires_at)
    return at


def fresh_deadlines(
    now: float, expires_at: float, policy: RefreshPolicy, rng: Jitter
) -> tuple[float, float]:
    """``(attempt_at, mandatory_at)`` for a new set: the advisory point, jittered so a fleet does
    not refresh in step, and the start of the mandatory window."""
    mandatory_at = expires_at - policy.mandatory_window
    advisory_at = expires_at - policy.advisory_window - rng.uniform(0.0, policy.advisory_jitter)
    if advisory_at > now:
        return advisory_at, mandatory_at
    # Credentials issued with less than the advisory window left: look again after a backoff
    # rather than on the very next call.
    at = next_attempt(now, 1, policy, rng, mandatory_at=mandatory_at, expires_at=expires_at)
    return at, mandatory_at


def same_again_deadlines(
    now: float, expires_at: float, retries: int, policy: RefreshPolicy, rng: Jitter
) -> tuple[float, float]:
    """``(attempt_at, mandatory_at)`` after IMDS handed back the set it gave last time, for the
    ``retries``-th time in a row."""
    mandatory_at = expires_at - policy.mandatory_window
    attempt_at = next_attempt(
        now, retries, policy, rng, mandatory_at=mandatory_at, expires_at=expires_at
    )
    promised_at = expires_at - IMDS_ROTATION_PROMISE
    if now < promised_at:
        # IMDS promises new credentials at least 5 min before the old ones expire; until then
        # asking again mostly finds the same set, and the current one is still good. Look at
        # the promise (jittered: processes on one instance share its IMDS), not before.
        promise = promised_at + rng.uniform(0.0, PROMISE_JITTER)
        attempt_at = max(attempt_at, min(promise, mandatory_at))
    return attempt_at, mandatory_at


def extension(
    now: float, extended_until: float, retries: int, policy: RefreshPolicy, rng: Jitter
) -> tuple[float, float]:
    """``(attempt_at, usable_until)`` while expired credentials stay in service: the current
    extension, or from ``now`` a new one of ``policy.stale_extension`` once it has run out; the
    next attempt after a backoff, never past the extension's end."""
    usable_until = extended_until
    if now >= usable_until:
        usable_until = now + rng.uniform(*policy.stale_extension)
    return min(now + backoff(retries, policy.retry_backoff, rng), usable_until), usable_until


def caller_deadline(
    attempt_at: float,
    *,
    mandatory_at: float,
    expires_at: float,
    usable_until: float,
    now: float,
    prefetching: bool,
) -> float:
    """Where callers leave the lock-free path. A prefetch thread keeps ``attempt_at``; callers
    then step in only as a backstop, at the mandatory window, or at the end of an extension if
    IMDS stays down."""
    if not prefetching:
        return attempt_at
    backstop = usable_until if expires_at <= now else mandatory_at
    return max(attempt_at, backstop)


def life_left(expiration: datetime, local_now: datetime, server_time: datetime | None) -> float:
    """Seconds a set has left: by the local clock and by the server's ``Date``, whichever leaves
    less (a local clock ahead, or an answer that took long to arrive, shortens the life, and
    nothing lengthens it), and never more than the 12 h no role session outlives."""
    left = (expiration - local_now).total_seconds()
    if server_time is not None:
        left = min(left, (expiration - server_time).total_seconds())
    return min(left, LONGEST_LIFE)
