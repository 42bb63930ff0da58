"""The refresh engine: hands out role credentials, refreshing them ahead of expiry.

Independent of IMDS: it calls a ``fetch`` function and reads time through the clock seam. The rules
(DESIGN.md §4):

- The caller's path reads one immutable snapshot without a lock: the credentials and a deadline on
  the monotonic clock, both computed once per fetch. One float compare decides; no datetime.
- Advisory window (15 min before expiry, plus up to 5 min of jitter so a fleet does not refresh in
  step): the first caller past the deadline refreshes, everyone else returns the current credentials
  at once. A failure is logged, never raised; the next attempt waits a jittered backoff.
- Mandatory window (1 min before expiry): callers wait for the one refresh in flight and re-read the
  snapshot after it (single flight: N threads, one fetch) -- unless the last attempt failed, since
  waiting on an IMDS that is down only turns an outage into latency.
- IMDS handing back the credentials it gave last time (it promises new ones only 5 min before
  expiry) is answered with backoff, never a hot loop.
- Static stability: when IMDS is down, or hands out credentials that have already expired, keep
  serving the last credentials past their expiry, in extensions of 5-15 min (jittered), with one
  WARNING per outage, and poll IMDS with bounded backoff instead of on every call. A caller sees an
  exception only when there never were credentials.
- Before the first credentials, a failed fetch is shared and backed off: callers until the next
  attempt get a copy of its error at once, so N callers of a broken IMDS cost it a bounded number
  of requests (``RefreshPolicy.first_fetch_backoff``).
- An optional daemon thread refreshes at the advisory point, so callers never wait.
- Time: a credentials' remaining life is measured against the server's clock (its ``Date``, in
  ``RoleCredentials.server_time``) as well as the local one, and the shorter is taken, so a local
  clock that is behind at the fetch cannot stretch it. Deadlines run on the monotonic clock, which NTP steps do not move; but it
  stops while the host is suspended (EC2 hibernation) and the wall clock does not. Each snapshot
  notes both clocks when it was made; whenever they have drifted apart since, the larger of the two
  elapsed times is taken as true and the deadlines move. That is looked at on every slow path, by
  the prefetch thread, and by one watcher thread per process every couple of seconds, so the hot
  path keeps its single monotonic read and a read soon after a resume refreshes.
- Fork safety: in a child process the lock is new (a parent thread may have held the old one at
  fork time) and the parent's prefetch thread, which does not exist in the child, is forgotten.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, NoReturn, TypeVar, overload

from imdscreds import _forksafe
from imdscreds.clock import SYSTEM_CLOCK, Clock, SystemClock
from imdscreds.credentials import RoleCredentials, format_timestamp
from imdscreds.errors import IMDSCredsError
from imdscreds.policy import DEFAULT_POLICY, RefreshPolicy

__all__ = ["RefreshPolicy", "RefreshingCredentials"]

log = logging.getLogger("imdscreds.refresh")

# How long the prefetch thread sleeps between looks at a clock other than the system clock: such a
# clock (a test's) moves without notice, so the thread looks often. On the system clock the thread
# sleeps until its deadline, waking every few seconds to compare the two clocks: its own sleep is
# on the monotonic clock, which stands still while the host is suspended.
# IMDS: "new credentials are available at least five minutes before the old ones expire".
_IMDS_ROTATION_PROMISE = 300.0
_PROMISE_JITTER = 60.0
_FAKE_CLOCK_POLL = 0.005
_SYSTEM_CLOCK_POLL = 10.0
# How often the watcher compares an engine's two clocks (see _ClockWatcher).
_SYSTEM_CLOCK_WATCH = 2.0
# How far the wall clock may run ahead of or behind the monotonic one before it counts as a suspend
# or a step: NTP slews a clock by at most 500 ppm, about 11 s over the 6 h credentials live.
_CLOCK_DRIFT_TOLERANCE = 30.0
# Two monotonic readings around a wall-clock reading further apart than this: the clock moved.
_CLOCK_READ_SLACK = 1.0
# No AWS role credentials live longer than 12 h (a role's longest session); a server Date far in
# the past must not make a set look good for longer.
_LONGEST_LIFE = 43200.0


V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Snapshot(Generic[V]):
    """What callers read without a lock; replaced whole, never changed. Times are monotonic."""

    credentials: RoleCredentials
    view: V  # view(credentials), built once per fetch
    refresh_at: float  # callers leave the lock-free path from here on
    anchor: float  # the monotonic reading when the deadlines were set ...
    wall_anchor: float  # ... and the wall clock's (epoch seconds): the two clocks' distance then
    attempt_at: float  # the next fetch is due (the prefetch thread's deadline)
    mandatory_at: float  # from here on callers wait for the refresh, unless the last one failed
    expires_at: float  # the credentials' expiration
    usable_until: float  # expires_at, or the end of the current extension while IMDS is down
    retries: int  # attempts since the last fresh credentials: the backoff exponent
    failing: bool  # the last attempt failed


class RefreshingCredentials(Generic[V]):
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
        self._view: Callable[[RoleCredentials], Any] = _identity if view is None else view
        self._clock = clock
        # SystemClock.monotonic is time.monotonic behind a Python frame; calling the C function
        # directly takes a third off the hot path (and likewise time.time for the wall clock).
        system = type(clock) is SystemClock
        self._monotonic: Callable[[], float] = time.monotonic if system else clock.monotonic
        self._wall: Callable[[], float] = time.time if system else _wall_seconds(clock)
        self._poll = _SYSTEM_CLOCK_POLL if system else _FAKE_CLOCK_POLL
        self._watch_every = _SYSTEM_CLOCK_WATCH if system else _FAKE_CLOCK_POLL
        self._own_rng = rng is None
        self._rng = random.Random() if rng is None else rng
        self._snapshot: _Snapshot[V] | None = None
        self._lock = threading.Lock()
        # Guarded by _lock:
        self._attempts = 0  # completed fetch attempts; waiters compare it to share an outcome
        # Why the last attempt, made while there were no credentials yet, failed, and when
        # (monotonic) the next such attempt may be made:
        self._first_error: Exception | None = None
        self._first_retry_at = -math.inf
        self._first_failures = 0
        self._warned = False  # this outage's one WARNING is out
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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

    # -- the caller's path ---------------------------------------------------------------------

    def get(self) -> RoleCredentials:
        """The current credentials, refreshed first when due; raises only if there never were any."""
        snap = self._snapshot
        if snap is not None and self._monotonic() < snap.refresh_at:
            return snap.credentials
        return self._get_slow().credentials

    def get_view(self) -> V:
        """Like :meth:`get`, but ``view(credentials)``: the same object until the next fetch."""
        snap = self._snapshot
        if snap is not None and self._monotonic() < snap.refresh_at:
            return snap.view
        return self._get_slow().view

    def async_reader(
        self, when_due: Callable[[], Awaitable[V]]
    ) -> Callable[[], Coroutine[Any, Any, V]]:
        """A coroutine function for an event loop's callers: :meth:`get_view`'s lock-free read,
        inline in the coroutine (no further frame: it runs on every signed request), and ``await
        when_due()`` instead of the blocking refresh when one is due."""
        monotonic = self._monotonic

        async def read() -> V:
            snap = self._snapshot
            if snap is not None and monotonic() < snap.refresh_at:
                return snap.view
            return await when_due()

        return read

    def peek_view(self) -> V | None:
        """The view of the credentials being served, without refreshing; None before the first
        fetch."""
        snap = self._snapshot
        return None if snap is None else snap.view

    def must_wait(self) -> bool:
        """Whether a caller of :meth:`get` now would wait for a refresh rather than be handed the
        current credentials: there are none yet, or the mandatory window has begun (and the last
        attempt did not fail)."""
        snap = self._snapshot
        return snap is None or self._must_wait(snap)

    def peek(self) -> RoleCredentials | None:
        """The credentials being served, without refreshing; None before the first fetch."""
        snap = self._snapshot
        return None if snap is None else snap.credentials

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

    def refresh_due(self) -> bool:
        """Whether the next :meth:`get` leaves the lock-free path to refresh (or to try to)."""
        snap = self._snapshot
        return snap is None or self._monotonic() >= snap.refresh_at

    def _elapsed_now(self, snap: _Snapshot[V]) -> float:
        # "Now" on the snapshot's monotonic scale, counting time the monotonic clock missed.
        clocks = self._read_clocks()
        if clocks is None:
            return self._monotonic()
        mono, wall = clocks
        return mono + max(0.0, _drift(snap, mono, wall))

    def _read_clocks(self) -> tuple[float, float] | None:
        """The monotonic and the wall clock read together, or None when the clock moved while it
        was read (a fake clock another thread advances): a reading split across a jump would look
        like a suspend."""
        before = self._monotonic()
        wall = self._wall()
        after = self._monotonic()
        return None if after - before > _CLOCK_READ_SLACK else (after, wall)

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

    def _get_slow(self) -> _Snapshot[V]:
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
                _raise_copy(self._first_error)
            return self._refresh_locked(background=False)

    def _raise_while_backing_off(self) -> None:
        error = self._first_error
        if error is not None and self._monotonic() < self._first_retry_at:
            _raise_copy(error)

    def _must_wait(self, snap: _Snapshot[V]) -> bool:
        return not snap.failing and self._elapsed_now(snap) >= snap.mandatory_at

    # -- refreshing (all under _lock) ----------------------------------------------------------

    def _refresh_locked(self, *, background: bool) -> _Snapshot[V]:
        snap = self._snapshot
        if snap is not None:
            snap = self._reconcile_clocks(snap)
            due = snap.attempt_at if background else snap.refresh_at
            if self._monotonic() < due:
                return snap  # refreshed while we were getting the lock, or not due after all
        else:
            self._raise_while_backing_off()  # another caller's attempt failed meanwhile
        return self._attempt(snap)

    def _reconcile_clocks(self, snap: _Snapshot[V]) -> _Snapshot[V]:
        """Re-anchor the two clocks; if the monotonic one missed time, move the deadlines."""
        clocks = self._read_clocks()
        if clocks is None:
            return snap  # look again next time
        mono, wall = clocks
        drift = _drift(snap, mono, wall)
        if abs(drift) <= _CLOCK_DRIFT_TOLERANCE:
            return snap
        if drift > 0:
            # The wall clock ran on while the monotonic one did not: a suspend (or the wall clock
            # was set forward). Believe the wall clock: expiring early is safe, late is not.
            log.info(
                "The monotonic clock stood still for %.0f s while the wall clock ran (the host was "
                "suspended, or its clock set forward); credentials (access key %s) are judged by "
                "the wall clock until the next fetch.",
                drift,
                snap.credentials.access_key_id,
            )
            snap = replace(
                snap,
                refresh_at=snap.refresh_at - drift,
                attempt_at=snap.attempt_at - drift,
                mandatory_at=snap.mandatory_at - drift,
                expires_at=snap.expires_at - drift,
                usable_until=snap.usable_until - drift,
            )
        # A wall clock set back needs no deadline moved (the monotonic ones still hold), only a
        # new anchor.
        snap = self._snapshot = replace(snap, anchor=mono, wall_anchor=wall)
        return snap

    def _watch_clocks(self) -> None:
        """The watcher's look: if the clocks drifted apart, move the deadlines now."""
        snap = self._snapshot
        clocks = self._read_clocks()
        if snap is None or clocks is None or abs(_drift(snap, *clocks)) <= _CLOCK_DRIFT_TOLERANCE:
            return
        if self._lock.acquire(blocking=False):  # busy: a refresh is under way, it reconciles
            try:
                if self._snapshot is not None:
                    self._reconcile_clocks(self._snapshot)
            finally:
                self._lock.release()

    def _attempt(self, prev: _Snapshot[V] | None) -> _Snapshot[V]:
        try:
            fresh = self._fetch()
        # A refresh must never take down a caller that holds usable credentials, whatever the
        # fetch raised; without credentials the error is the caller's, with its hint.
        except Exception as exc:
            self._attempts += 1
            if prev is None:
                self._first_failed(exc)
                raise
            return self._serve_last(prev, self._monotonic(), _describe(exc), None)
        self._attempts += 1
        self._first_error = None
        self._first_failures = 0
        now = self._monotonic()
        left = self._life_left(fresh)
        if left <= 0:
            why = (
                f"IMDS handed out credentials that expired at {_when(fresh)}; "
                "is this host's clock right?"
            )
            return self._serve_last(prev, now, why, (fresh, now + left))
        if prev is not None and _same(fresh, prev.credentials):
            return self._not_rotated(prev, now, now + left)
        return self._publish_fresh(prev, fresh, now, now + left)

    def _life_left(self, fresh: RoleCredentials) -> float:
        # The one wall-clock reading per fetch; from here on the deadlines are the engine's. The
        # server's Date (its clock is right when ours may be behind) and ours, whichever leaves
        # less: a local clock ahead, or an answer that took long to arrive, shortens the life,
        # and nothing lengthens it.
        left = (fresh.expiration - self._clock.now()).total_seconds()
        if fresh.server_time is not None:
            left = min(left, (fresh.expiration - fresh.server_time).total_seconds())
        return min(left, _LONGEST_LIFE)

    def _first_failed(self, exc: Exception) -> None:
        self._first_error = exc
        self._first_failures += 1
        first, longest = self.policy.first_fetch_backoff
        ceiling = min(longest, first * 2.0 ** min(self._first_failures - 1, 32))
        wait = ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)
        self._first_retry_at = self._monotonic() + wait
        log.debug(
            "Fetching the first credentials failed (%d in a row); callers get the same error "
            "for %.1f s, then the next caller tries again.",
            self._first_failures,
            wait,
        )

    def _publish_fresh(
        self, prev: _Snapshot[V] | None, fresh: RoleCredentials, now: float, expires_at: float
    ) -> _Snapshot[V]:
        policy = self.policy
        mandatory_at = expires_at - policy.mandatory_window
        advisory_at = (
            expires_at - policy.advisory_window - self._rng.uniform(0.0, policy.advisory_jitter)
        )
        if advisory_at > now:
            attempt_at = advisory_at
        else:
            # Credentials issued with less than the advisory window left: look again after a
            # backoff rather than on the very next call.
            attempt_at = self._next_attempt(now, 1, mandatory_at, expires_at)
        if prev is not None and prev.failing:
            log.info(
                "IMDS is answering again: fresh credentials (access key %s) expire at %s.",
                fresh.access_key_id,
                _when(fresh),
            )
        else:
            log.debug(
                "Fetched credentials (access key %s, role %s) that expire at %s; next refresh in "
                "%.0f s.",
                fresh.access_key_id,
                fresh.role_name,
                _when(fresh),
                attempt_at - now,
            )
        self._warned = False
        self._start_prefetch()
        _WATCHER.watch(self)
        return self._publish(
            fresh,
            attempt_at=attempt_at,
            mandatory_at=mandatory_at,
            expires_at=expires_at,
            usable_until=expires_at,
            retries=0,
            failing=False,
        )

    def _not_rotated(self, prev: _Snapshot[V], now: float, expires_at: float) -> _Snapshot[V]:
        # The same set again; its expiry is measured anew (the clocks may have moved since).
        retries = prev.retries + 1
        mandatory_at = expires_at - self.policy.mandatory_window
        attempt_at = self._next_attempt(now, retries, mandatory_at, expires_at)
        promised_at = expires_at - _IMDS_ROTATION_PROMISE
        if now < promised_at:
            # IMDS promises new credentials at least 5 min before the old ones expire; until then
            # asking again mostly finds the same set, and the current one is still good. Look at
            # the promise (jittered: processes on one instance share its IMDS), not before.
            promise = promised_at + self._rng.uniform(0.0, _PROMISE_JITTER)
            attempt_at = max(attempt_at, min(promise, mandatory_at))
        log.debug(
            "IMDS handed back the same credentials (access key %s, expiring at %s); looking again "
            "in %.0f s.",
            prev.credentials.access_key_id,
            _when(prev.credentials),
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

    def _serve_last(
        self,
        prev: _Snapshot[V] | None,
        now: float,
        why: str,
        expired: tuple[RoleCredentials, float] | None,
    ) -> _Snapshot[V]:
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
            attempt_at = self._next_attempt(now, retries, mandatory_at, expires_at)
            level = logging.DEBUG if prev is not None and prev.failing else logging.INFO
            log.log(
                level,
                "Refreshing credentials failed: %s Still serving credentials (access key %s) "
                "valid until %s; trying again in %.0f s.",
                why,
                credentials.access_key_id,
                _when(credentials),
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
        usable_until = extended_until
        if now >= usable_until:
            usable_until = now + self._rng.uniform(*self.policy.stale_extension)
        attempt_at = min(now + self._backoff(retries), usable_until)
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(
            level,
            "IMDS unavailable: %s Serving credentials (access key %s) that expired at %s for up "
            "to %.0f min more, retrying IMDS with backoff (at most %.0f s apart).",
            why,
            credentials.access_key_id,
            _when(credentials),
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

    def _next_attempt(
        self, now: float, retries: int, mandatory_at: float, expires_at: float
    ) -> float:
        at = now + self._backoff(retries)
        # Never let a backoff skip the start of the mandatory window or the expiry itself: each
        # changes what callers do, so each gets an attempt on time.
        if now < mandatory_at:
            return min(at, mandatory_at)
        if now < expires_at:
            return min(at, expires_at)
        return at

    def _backoff(self, retries: int) -> float:
        first, longest = self.policy.retry_backoff
        ceiling = min(longest, first * 2.0 ** min(retries - 1, 32))
        # "Equal jitter": at least half the ceiling, so retries never bunch up near zero.
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)

    def _publish(
        self,
        credentials: RoleCredentials,
        *,
        attempt_at: float,
        mandatory_at: float,
        expires_at: float,
        usable_until: float,
        retries: int,
        failing: bool,
    ) -> _Snapshot[V]:
        refresh_at = attempt_at
        for _ in range(3):  # an anchor wants both clocks read at one instant
            clocks = self._read_clocks()
            if clocks is not None:
                break
        mono, wall = clocks if clocks is not None else (self._monotonic(), self._wall())
        if self._thread is not None:
            # The prefetch thread keeps attempt_at; callers step in only as a backstop, at the
            # mandatory window, or at the end of an extension if IMDS stays down.
            backstop = usable_until if expires_at <= mono else mandatory_at
            refresh_at = max(attempt_at, backstop)
        prev = self._snapshot
        view = (
            prev.view
            if prev is not None and prev.credentials is credentials
            else self._view(credentials)
        )
        snap = self._snapshot = _Snapshot(
            credentials,
            view,
            refresh_at,
            mono,
            wall,
            attempt_at,
            mandatory_at,
            expires_at,
            usable_until,
            retries,
            failing,
        )
        return snap

    def _callers_take_over(self) -> None:
        snap = self._snapshot
        if snap is not None:
            self._snapshot = replace(snap, refresh_at=snap.attempt_at)

    # -- prefetch thread -------------------------------------------------------------------------

    def _start_prefetch(self) -> None:
        if not self.policy.prefetch or self._closed or self._thread is not None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_prefetch_loop,
            args=(weakref.ref(self), self._stop),
            name="imdscreds-prefetch",
            daemon=True,
        )
        self._thread.start()

    def _prefetch_once(self) -> float:
        """Refresh if due; return how long to sleep before looking again."""
        snap = self._snapshot
        mono = self._monotonic()
        clocks = self._read_clocks()
        if (
            snap is not None
            and mono < snap.attempt_at
            and (clocks is None or abs(_drift(snap, *clocks)) <= _CLOCK_DRIFT_TOLERANCE)
        ):
            return min(snap.attempt_at - mono, self._poll)
        with self._lock:
            if not self._stop.is_set():
                self._refresh_locked(background=True)
        return 0.0

    # -- fork ----------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # Another parent thread may have held the lock at fork time; in the child nobody ever
        # releases it. The prefetch thread was not copied either: callers refresh until the
        # child's next successful fetch starts a thread of its own.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self._own_rng:
            self._rng.seed()  # or every worker of a pre-fork server jitters in step
        self._callers_take_over()


def _prefetch_loop(ref: weakref.ref[RefreshingCredentials[Any]], stop: threading.Event) -> None:
    # Holds the engine only weakly between looks, so dropping it (without close()) ends the thread.
    while not stop.is_set():
        engine = ref()
        if engine is None:
            return
        try:
            wait = engine._prefetch_once()
        except Exception:  # the thread must outlive any one failed refresh
            log.debug("Background refresh failed.", exc_info=True)
            wait = engine._poll
        del engine
        if wait > 0:
            stop.wait(wait)


class _ClockWatcher:
    """One daemon thread per process: compares each engine's two clocks every couple of seconds.

    It is how a suspend is noticed without a second clock read on every call: its own sleep is on
    the monotonic clock, so it wakes within its interval of the host's resume, sees the wall clock
    far ahead, and moves the engines' deadlines; the next read then refreshes. It holds engines
    weakly and ends when none is left.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._engines: weakref.WeakSet[RefreshingCredentials[Any]] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def watch(self, engine: RefreshingCredentials[Any]) -> None:
        with self._lock:
            self._engines.add(engine)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="imdscreds-clock-watch", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                engines = list(self._engines)
                if not engines:
                    self._thread = None
                    return
            interval = min(engine._watch_every for engine in engines)
            for engine in engines:
                try:
                    engine._watch_clocks()
                except Exception:  # a broken clock of one engine must not stop the others'
                    log.debug("Comparing an engine's clocks failed.", exc_info=True)
            del engines, engine
            time.sleep(interval)

    def _after_fork_in_child(self) -> None:
        # The thread was not copied (the lock may have been held by it); the engines were, and
        # the next watch() starts a thread for them all.
        self._lock = threading.Lock()
        self._thread = None


_WATCHER = _ClockWatcher()
_forksafe.track(_WATCHER)


def _identity(credentials: RoleCredentials) -> RoleCredentials:
    return credentials


def _wall_seconds(clock: Clock) -> Callable[[], float]:
    def wall() -> float:
        return clock.now().timestamp()

    return wall


def _drift(snap: _Snapshot[Any], mono: float, wall: float) -> float:
    """How much further the wall clock has run than the monotonic one since the snapshot's anchor."""
    return (wall - snap.wall_anchor) - (mono - snap.anchor)


def _raise_copy(error: Exception) -> NoReturn:
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


def _same(a: RoleCredentials, b: RoleCredentials) -> bool:
    return a.access_key_id == b.access_key_id and a.expiration == b.expiration


def _when(credentials: RoleCredentials) -> str:
    return format_timestamp(credentials.expiration)


def _describe(exc: Exception) -> str:
    # Our errors carry their hint and never a secret; anything else is named by its type.
    text = str(exc).strip()
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described if described.endswith(".") else described + "."
