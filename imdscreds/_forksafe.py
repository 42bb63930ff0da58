"""Fork safety: after ``os.fork()`` the child's copies of our locks, threads and sockets are not its own.

A lock another parent thread held at fork time is never released in the child; the parent's
threads do not exist there; a pooled socket is shared with the parent, so using it would interleave
two processes' requests on one connection. Each object that owns such things registers here and
replaces them in its ``_after_fork_in_child()``, which runs in the child before it returns from
``fork()`` (and so before any of its threads can call in).
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["track"]


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_TRACKED: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def track(obj: _ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` is alive."""
    _TRACKED.add(obj)


def _reset_after_fork() -> None:
    for obj in list(_TRACKED):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
