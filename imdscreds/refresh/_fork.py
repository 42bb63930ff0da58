"""Fork handling: what an engine replaces in a child process after ``os.fork()``."""

from __future__ import annotations

import threading
from typing import TypeVar

from imdscreds.refresh._snapshot import Published

__all__ = ["ForkSafe"]

V = TypeVar("V")


class ForkSafe(Published[V]):
    """Called in the child by :mod:`imdscreds._forksafe`, before any of its threads can call in."""

    _stop: threading.Event
    _own_rng: bool  # the engine made its random source (so reseeding it surprises nobody)

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
