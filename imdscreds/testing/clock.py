"""``FakeClock``: a ``Clock`` that moves only when told to.

Wall time and monotonic time advance together, so a test that ticks the clock by an hour sees
credentials rotate at a fake IMDS and a refresh come due in the code under test at the same moment.
``sleep`` advances instead of waiting, which lets a retry loop with backoff run in microseconds.
``suspend`` moves the wall clock alone, as a host that sleeps or hibernates sees it: Linux's
``CLOCK_MONOTONIC`` (Python's ``time.monotonic``) does not count the time suspended.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

__all__ = ["FakeClock"]

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class FakeClock:
    """A thread-safe manual clock implementing ``imdscreds.clock.Clock``."""

    def __init__(self, start: datetime = DEFAULT_START, monotonic_start: float = 1_000.0) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(
                f"FakeClock start must be timezone-aware, got naive {start.isoformat()}; "
                "pass e.g. datetime(2026, 1, 1, tzinfo=timezone.utc)"
            )
        self._lock = threading.Lock()
        self._start = start.astimezone(timezone.utc)
        self._monotonic_start = float(monotonic_start)
        self._elapsed = 0.0
        self._suspended = 0.0  # wall-clock seconds the monotonic clock did not see
        self._sleeps: list[float] = []

    def monotonic(self) -> float:
        """Seconds since an arbitrary origin; moves only with ``advance``, ``sleep`` and ``set``."""
        with self._lock:
            return self._monotonic_start + self._elapsed

    def now(self) -> datetime:
        """The fake wall-clock time, timezone-aware, in UTC."""
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed + self._suspended)

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once (a negative or zero sleep is a no-op, as in the real clock).

        Every call is recorded in ``sleeps``, so a test can check that code backs off.
        """
        with self._lock:
            self._sleeps.append(seconds)
            if seconds > 0:
                self._elapsed += seconds

    def advance(self, seconds: float) -> None:
        """Move wall and monotonic time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"FakeClock only moves forward; advance({seconds}) would go back")
        with self._lock:
            self._elapsed += seconds

    def suspend(self, seconds: float) -> None:
        """The host sleeps for ``seconds``: wall time moves on, monotonic time stands still."""
        if seconds < 0:
            raise ValueError(f"FakeClock.suspend({seconds}) would go back")
        with self._lock:
            self._suspended += seconds

    def set(self, instant: datetime) -> None:
        """Move the wall clock to ``instant`` (aware, not earlier than now); monotonic follows."""
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(f"FakeClock.set needs a timezone-aware datetime, got {instant!r}")
        with self._lock:
            delta = (instant - self._start).total_seconds() - self._elapsed - self._suspended
            if delta < 0:
                raise ValueError(
                    f"FakeClock only moves forward; {instant.isoformat()} is {-delta:g} s before "
                    "the current fake time"
                )
            self._elapsed += delta

    @property
    def sleeps(self) -> list[float]:
        """The ``seconds`` of every ``sleep`` call so far, in order (a copy)."""
        with self._lock:
            return list(self._sleeps)

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now().isoformat()}, monotonic={self.monotonic():g})"
