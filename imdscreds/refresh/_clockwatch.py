"""Clock reconciliation: deadlines moved when the two clocks drift apart, and the watcher thread."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import replace
from typing import Protocol, TypeVar

from imdscreds import _forksafe
from imdscreds.refresh._snapshot import Published, Snapshot, drift

__all__ = ["CLOCK_DRIFT_TOLERANCE", "SYSTEM_CLOCK_WATCH", "WATCHER", "ClockReconciler"]

log = logging.getLogger("imdscreds.refresh")

V = TypeVar("V")

# How often the watcher compares an engine's two clocks (see _ClockWatcher).
SYSTEM_CLOCK_WATCH = 2.0
# How far the wall clock may run ahead of or behind the monotonic one before it counts as a suspend
# or a step: NTP slews a clock by at most 500 ppm, about 11 s over the 6 h credentials live.
CLOCK_DRIFT_TOLERANCE = 30.0


class ClockReconciler(Published[V]):
    """Deadlines that survive a suspended host: the monotonic clock stops, the wall clock does not.

    Each snapshot notes both clocks when it was made; whenever they have drifted apart since, the
    larger of the two elapsed times is taken as true and the deadlines move.
    """

    _watch_every: float  # the watcher's interval for this engine's clock

    def _reconcile_clocks(self, snap: Snapshot[V]) -> Snapshot[V]:
        """Re-anchor the two clocks; if the monotonic one missed time, move the deadlines."""
        clocks = self._read_clocks()
        if clocks is None:
            return snap  # look again next time
        mono, wall = clocks
        moved = drift(snap, mono, wall)
        if abs(moved) <= CLOCK_DRIFT_TOLERANCE:
            return snap
        if moved > 0:
            # The wall clock ran on while the monotonic one did not: a suspend (or the wall clock
            # was set forward). Believe the wall clock: expiring early is safe, late is not.
            log.info(
                "The monotonic clock stood still for %.0f s while the wall clock ran (the host was "
                "suspended, or its clock set forward); credentials (access key %s) are judged by "
                "the wall clock until the next fetch.",
                moved,
                snap.credentials.access_key_id,
            )
            snap = replace(
                snap,
                refresh_at=snap.refresh_at - moved,
                attempt_at=snap.attempt_at - moved,
                mandatory_at=snap.mandatory_at - moved,
                expires_at=snap.expires_at - moved,
                usable_until=snap.usable_until - moved,
            )
        # A wall clock set back needs no deadline moved (the monotonic ones still hold), only a
        # new anchor.
        snap = self._snapshot = replace(snap, anchor=mono, wall_anchor=wall)
        return snap

    def _clocks_agree(self, snap: Snapshot[V] | None) -> bool:
        """Whether the two clocks are still as far apart as at the snapshot's anchor (or cannot
        be read together just now)."""
        clocks = self._read_clocks()
        return snap is None or clocks is None or abs(drift(snap, *clocks)) <= CLOCK_DRIFT_TOLERANCE

    def _watch_clocks(self) -> None:
        """The watcher's look: if the clocks drifted apart, move the deadlines now."""
        if self._clocks_agree(self._snapshot):
            return
        if self._lock.acquire(blocking=False):  # busy: a refresh is under way, it reconciles
            try:
                if self._snapshot is not None:
                    self._reconcile_clocks(self._snapshot)
            finally:
                self._lock.release()


class _Watched(Protocol):
    _watch_every: float

    def _watch_clocks(self) -> None: ...


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
        self._engines: weakref.WeakSet[_Watched] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def watch(self, engine: _Watched) -> None:
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


WATCHER = _ClockWatcher()
_forksafe.track(WATCHER)
