"""The engine: :class:`RefreshingCredentials`, one fetch per rotation, made of its siblings.

The other modules' parts are its base classes (so the lock-free read is the method itself, with no
object in between): the snapshot and its reads, static stability, the clock watch, the prefetch
thread and fork handling; the schedule is called as functions.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, overload

from imdscreds import _forksafe
from imdscreds.clock import SYSTEM_CLOCK, Clock, SystemClock
from imdscreds.credentials import RoleCredentials
from imdscreds.policy import DEFAULT_POLICY, RefreshPolicy
from imdscreds.refresh import schedule
from imdscreds.refresh._clockwatch import SYSTEM_CLOCK_WATCH, WATCHER
from imdscreds.refresh._fork import ForkSafe
from imdscreds.refresh._prefetch import FAKE_CLOCK_POLL, SYSTEM_CLOCK_POLL, Prefetcher
from imdscreds.refresh._snapshot import Snapshot
from imdscreds.refresh._stability import StaticStability, describe, raise_copy, when

__all__ = ["RefreshingCredentials"]

log = logging.getLogger("imdscreds.refresh")

V = TypeVar("V")


class RefreshingCredentials(ForkSafe[V], Prefetcher[V], StaticStability[V], Generic[V]):
    """Role credentials that refresh themselves ahead of expiry; one instance serves every thread.

    ``fetch`` returns fresh :class:`RoleCredentials` or raises; it is called by one thread at a time.
    ``view``, if given, turns each new set into what :meth:`get_view` hands out (botocore's
    ``ReadOnlyCredentials``, say), once per fetch rather than once per call.
    """

    @overload
    def __init__(
        self: RefreshingCredentials[RoleCredentials],
        fetch: Callable[[], RoleCredentials],
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        view: None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: RefreshingCredentials[V],
        fetch: Callable[[], RoleCredentials],
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        view: Callable[[RoleCredentials], V],
    ) -> None: ...

    def __init__(
        self,
        fetch: Callable[[], RoleCredentials],
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        view: Callable[[RoleCredentials], Any] | None = None,
    ) -> None:
        if not callable(fetch):
            raise TypeError(f"fetch must be a callable returning RoleCredentials, not {fetch!r}")
        if policy is not None and not isinstance(policy, RefreshPolicy):
            raise TypeError(f"policy must be a RefreshPolicy, not {policy!r}")
        self.policy = DEFAULT_POLICY if policy is None else policy
        self._fetch = fetch
        self._view = _identity if view is None else view
        self._clock = clock
        # SystemClock.monotonic is time.monotonic behind a Python frame; calling the C function
        # directly takes a third off the hot path (and likewise time.time for the wall clock).
        system = type(clock) is SystemClock
        self._monotonic = time.monotonic if system else clock.monotonic
        self._wall = time.time if system else _wall_seconds(clock)
        self._poll = SYSTEM_CLOCK_POLL if system else FAKE_CLOCK_POLL
        self._watch_every = SYSTEM_CLOCK_WATCH if system else FAKE_CLOCK_POLL
        self._own_rng = rng is None
        self._rng = random.Random() if rng is None else rng
        self._snapshot = None
        self._lock = threading.Lock()
        # Guarded by _lock:
        self._attempts = 0  # completed fetch attempts; waiters compare it to share an outcome
        # Why the last attempt, made while there were no credentials yet, failed, and when
        # (monotonic) the next such attempt may be made:
        self._first_error = None
        self._first_retry_at = -math.inf
        self._first_failures = 0
        self._warned = False  # this outage's one WARNING is out
        self._closed = False
        self._stop = threading.Event()
        self._thread = None
        _forksafe.track(self)

    def __repr__(self) -> str:
        snap = self._snapshot
        if snap is None:
            return "RefreshingCredentials(no credentials yet)"
        left = snap.expires_at - self._monotonic()
        return (
            f"RefreshingCredentials(access_key_id={snap.credentials.access_key_id!r}, "
            f"role_name={snap.credentials.role_name!r}, expires_in={left:.0f}s, "
            f"prefetch={self._thread is not None})"
        )

    # -- beside the lock-free reads (see Published) ---------------------------------------------

    def must_wait(self) -> bool:
        """Whether a caller of :meth:`get` now would wait for a refresh rather than be handed the
        current credentials: there are none yet, or the mandatory window has begun (and the last
        attempt did not fail)."""
        snap = self._snapshot
        return snap is None or self._must_wait(snap)

    def expires_in(self) -> float | None:
        """Seconds until the served credentials expire (negative while serving expired ones)."""
        snap = self._snapshot
        return None if snap is None else snap.expires_at - self._elapsed_now(snap)

    def usable_for(self) -> float | None:
        """Seconds the served credentials stay in use: to expiry, or while IMDS is down to the end
        of their current extension."""
        snap = self._snapshot
        return None if snap is None else snap.usable_until - self._elapsed_now(snap)

    def usable_until(self) -> datetime | None:
        """The expiration to tell a client that caches these credentials (the AWS CLI, an SDK):
        their own, or while expired ones are served, the wall-clock end of the extension."""
        snap = self._snapshot
        if snap is None:
            return None
        if snap.usable_until <= snap.expires_at:
            return snap.credentials.expiration
        return self._clock.now() + timedelta(seconds=snap.usable_until - self._elapsed_now(snap))

    def close(self) -> None:
        """Stop the prefetch thread; :meth:`get` keeps working, refreshing in the caller's thread."""
        with self._lock:
            self._closed = True
            self._stop.set()
            thread, self._thread = self._thread, None
            self._callers_take_over()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def __enter__(self) -> RefreshingCredentials[V]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get_slow(self) -> Snapshot[V]:
        attempts = self._attempts
        lock = self._lock
        if self._snapshot is None:
            self._raise_while_backing_off()
        if lock.acquire(blocking=False):
            try:
                return self._refresh_locked(background=False)
            finally:
                lock.release()
        snap = self._snapshot
        if snap is not None and not self._must_wait(snap):
            return snap  # someone else is refreshing; ours are still good to use
        with lock:
            if self._attempts != attempts:
                # The refresh in flight ended while we waited: its outcome is ours (single flight).
                snap = self._snapshot
                if snap is not None:
                    return snap
                assert self._first_error is not None
                raise_copy(self._first_error)
            return self._refresh_locked(background=False)

    def _must_wait(self, snap: Snapshot[V]) -> bool:
        return not snap.failing and self._elapsed_now(snap) >= snap.mandatory_at

    # -- refreshing (all under _lock) ----------------------------------------------------------

    def _refresh_locked(self, *, background: bool) -> Snapshot[V]:
        snap = self._snapshot
        if snap is not None:
            snap = self._reconcile_clocks(snap)
            due = snap.attempt_at if background else snap.refresh_at
            if self._monotonic() < due:
                return snap  # refreshed while we were getting the lock, or not due after all
        else:
            self._raise_while_backing_off()  # another caller's attempt failed meanwhile
        return self._attempt(snap)

    def _attempt(self, prev: Snapshot[V] | None) -> Snapshot[V]:
        try:
            fresh = self._fetch()
        # A refresh must never take down a caller that holds usable credentials, whatever the
        # fetch raised; without credentials the error is the caller's, with its hint.
        except Exception as exc:
            self._attempts += 1
            if prev is None:
                self._first_failed(exc)
                raise
            return self._serve_last(prev, self._monotonic(), describe(exc), None)
        self._attempts += 1
        self._first_error = None
        self._first_failures = 0
        now = self._monotonic()
        # The one wall-clock reading per fetch; from here on the deadlines are the engine's, and
        # the server's Date (its clock is right when ours may be behind) has a say too.
        left = schedule.life_left(fresh.expiration, self._clock.now(), fresh.server_time)
        if left <= 0:
            why = (
                f"IMDS handed out credentials that expired at {when(fresh)}; "
                "is this host's clock right?"
            )
            return self._serve_last(prev, now, why, (fresh, now + left))
        if prev is not None and _same(fresh, prev.credentials):
            return self._not_rotated(prev, now, now + left)
        return self._publish_fresh(prev, fresh, now, now + left)

    def _publish_fresh(
        self, prev: Snapshot[V] | None, fresh: RoleCredentials, now: float, expires_at: float
    ) -> Snapshot[V]:
        attempt_at, mandatory_at = schedule.fresh_deadlines(now, expires_at, self.policy, self._rng)
        if prev is not None and prev.failing:
            log.info(
                "IMDS is answering again: fresh credentials (access key %s) expire at %s.",
                fresh.access_key_id,
                when(fresh),
            )
        else:
            log.debug(
                "Fetched credentials (access key %s, role %s) that expire at %s; next refresh in "
                "%.0f s.",
                fresh.access_key_id,
                fresh.role_name,
                when(fresh),
                attempt_at - now,
            )
        self._warned = False
        self._start_prefetch()
        WATCHER.watch(self)
        return self._publish(
            fresh,
            attempt_at=attempt_at,
            mandatory_at=mandatory_at,
            expires_at=expires_at,
            usable_until=expires_at,
            retries=0,
            failing=False,
        )

    def _not_rotated(self, prev: Snapshot[V], now: float, expires_at: float) -> Snapshot[V]:
        # The same set again; its expiry is measured anew (the clocks may have moved since).
        retries = prev.retries + 1
        attempt_at, mandatory_at = schedule.same_again_deadlines(
            now, expires_at, retries, self.policy, self._rng
        )
        log.debug(
            "IMDS handed back the same credentials (access key %s, expiring at %s); looking again "
            "in %.0f s.",
            prev.credentials.access_key_id,
            when(prev.credentials),
            attempt_at - now,
        )
        return self._publish(
            prev.credentials,
            attempt_at=attempt_at,
            mandatory_at=mandatory_at,
            expires_at=expires_at,
            usable_until=expires_at,
            retries=retries,
            failing=False,
        )


def _identity(credentials: RoleCredentials) -> RoleCredentials:
    return credentials


def _wall_seconds(clock: Clock) -> Callable[[], float]:
    def wall() -> float:
        return clock.now().timestamp()

    return wall


def _same(a: RoleCredentials, b: RoleCredentials) -> bool:
    return a.access_key_id == b.access_key_id and a.expiration == b.expiration
