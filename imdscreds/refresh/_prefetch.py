"""The prefetch thread: an optional daemon refreshing at the advisory point, so no caller waits."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, TypeVar

from imdscreds.refresh._clockwatch import ClockReconciler
from imdscreds.refresh._snapshot import Snapshot

__all__ = ["FAKE_CLOCK_POLL", "SYSTEM_CLOCK_POLL", "Prefetcher"]

log = logging.getLogger("imdscreds.refresh")

V = TypeVar("V")

# How long the prefetch thread sleeps between looks at a clock other than the system clock: such a
# clock (a test's) moves without notice, so the thread looks often. On the system clock the thread
# sleeps until its deadline, waking every few seconds to compare the two clocks: its own sleep is
# on the monotonic clock, which stands still while the host is suspended.
FAKE_CLOCK_POLL = 0.005
SYSTEM_CLOCK_POLL = 10.0


class Prefetcher(ClockReconciler[V]):
    """Starts the engine's prefetch thread and does each of its looks."""

    _poll: float  # the longest sleep between the thread's looks
    _closed: bool
    _stop: threading.Event

    def _refresh_locked(self, *, background: bool) -> Snapshot[V]:
        raise NotImplementedError  # the engine's: refresh if due, under _lock

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
        # Dropping the engine wakes its thread at once, rather than at its next look (up to
        # SYSTEM_CLOCK_POLL later): a process making one engine per request keeps no crowd of them.
        weakref.finalize(self, self._stop.set)
        self._thread.start()

    def _prefetch_once(self) -> float:
        """Refresh if due; return how long to sleep before looking again."""
        snap = self._snapshot
        mono = self._monotonic()
        agree = self._clocks_agree(snap)
        if snap is not None and mono < snap.attempt_at and agree:
            return min(snap.attempt_at - mono, self._poll)
        with self._lock:
            if not self._stop.is_set():
                self._refresh_locked(background=True)
        return 0.0


def _prefetch_loop(ref: weakref.ref[Prefetcher[Any]], stop: threading.Event) -> None:
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
