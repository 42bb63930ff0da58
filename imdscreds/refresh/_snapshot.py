"""The snapshot and its publication: the caller's lock-free path, one monotonic read and compare."""

from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from imdscreds.clock import Clock
from imdscreds.credentials import RoleCredentials
from imdscreds.policy import RefreshPolicy
from imdscreds.refresh import schedule

__all__ = ["Published", "Snapshot", "drift"]

V = TypeVar("V")

# Two monotonic readings around a wall-clock reading further apart than this: the clock moved.
_CLOCK_READ_SLACK = 1.0


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[V]):
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


def drift(snap: Snapshot[Any], mono: float, wall: float) -> float:
    """How much further the wall clock has run than the monotonic one since the snapshot's anchor."""
    return (wall - snap.wall_anchor) - (mono - snap.anchor)


class Published(Generic[V]):
    """The engine's published snapshot: the lock-free reads, and how a new snapshot is made.

    The state every part of the engine shares is declared here; the engine sets it.
    """

    policy: RefreshPolicy
    _clock: Clock
    _monotonic: Callable[[], float]
    _wall: Callable[[], float]
    _view: Callable[[RoleCredentials], Any]
    _rng: random.Random
    _lock: threading.Lock
    _thread: threading.Thread | None
    _snapshot: Snapshot[V] | None

    def _get_slow(self) -> Snapshot[V]:
        raise NotImplementedError  # the engine's: a refresh, or a wait for one

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

    def peek(self) -> RoleCredentials | None:
        """The credentials being served, without refreshing; None before the first fetch."""
        snap = self._snapshot
        return None if snap is None else snap.credentials

    def refresh_due(self) -> bool:
        """Whether the next :meth:`get` leaves the lock-free path to refresh (or to try to)."""
        snap = self._snapshot
        return snap is None or self._monotonic() >= snap.refresh_at

    def _elapsed_now(self, snap: Snapshot[V]) -> float:
        # "Now" on the snapshot's monotonic scale, counting time the monotonic clock missed.
        clocks = self._read_clocks()
        if clocks is None:
            return self._monotonic()
        mono, wall = clocks
        return mono + max(0.0, drift(snap, mono, wall))

    def _read_clocks(self) -> tuple[float, float] | None:
        """The monotonic and the wall clock read together, or None when the clock moved while it
        was read (a fake clock another thread advances): a reading split across a jump would look
        like a suspend."""
        before = self._monotonic()
        wall = self._wall()
        after = self._monotonic()
        return None if after - before > _CLOCK_READ_SLACK else (after, wall)

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
    ) -> Snapshot[V]:
        for _ in range(3):  # an anchor wants both clocks read at one instant
            clocks = self._read_clocks()
            if clocks is not None:
                break
        mono, wall = clocks if clocks is not None else (self._monotonic(), self._wall())
        refresh_at = schedule.caller_deadline(
            attempt_at,
            mandatory_at=mandatory_at,
            expires_at=expires_at,
            usable_until=usable_until,
            now=mono,
            prefetching=self._thread is not None,
        )
        prev = self._snapshot
        view = (
            prev.view
            if prev is not None and prev.credentials is credentials
            else self._view(credentials)
        )
        snap = self._snapshot = Snapshot(
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
