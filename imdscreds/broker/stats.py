"""What the broker counts for its operator (``/healthz`` and ``/metrics``): numbers, never a secret."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["Counters"]

_PREFIX = "imdscreds_broker"


class Counters:
    """Requests served and refused (by reason), connections dropped (by reason), upstream fetches.

    Requests are counted on the broker's event loop, fetches on whichever thread refreshes; one
    lock covers both, taken for a few increments at a time.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.served = 0
        self.unavailable = 0  # 503: no credentials to hand out
        self.refused: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.fetches_ok = 0
        self.fetches_failed = 0
        self.last_fetch_failed = False
        self._last_good: float | None = None

    def count_served(self) -> None:
        with self._lock:
            self.served += 1

    def count_unavailable(self) -> None:
        with self._lock:
            self.unavailable += 1

    def count_refused(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] += 1

    def count_dropped(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1

    def count_fetch(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.fetches_ok += 1
                self._last_good = self._monotonic()
            else:
                self.fetches_failed += 1
            self.last_fetch_failed = not ok

    def seconds_since_good_fetch(self) -> float | None:
        last = self._last_good
        return None if last is None else self._monotonic() - last

    def document(self) -> dict[str, Any]:
        """The counters as JSON (``/healthz``'s ``Counters``)."""
        with self._lock:
            return {
                "RequestsServed": self.served,
                "RequestsUnavailable": self.unavailable,
                "RequestsRefused": dict(sorted(self.refused.items())),
                "ConnectionsDropped": dict(sorted(self.dropped.items())),
                "UpstreamFetches": self.fetches_ok + self.fetches_failed,
                "UpstreamFetchesFailed": self.fetches_failed,
            }

    def prometheus(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The Prometheus text exposition (format 0.0.4) of the counters and of ``gauges``
        (name -> (help, value))."""
        out: list[str] = []

        def family(name: str, kind: str, doc: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {_PREFIX}_{name} {doc}")
            out.append(f"# TYPE {_PREFIX}_{name} {kind}")
            out.extend(f"{_PREFIX}_{name}{labels} {value:g}" for labels, value in samples)

        with self._lock:
            family(
                "requests_served_total",
                "counter",
                "Credentials answers (200).",
                [("", self.served)],
            )
            family(
                "requests_unavailable_total",
                "counter",
                "Credentials requests answered 503 (no credentials held).",
                [("", self.unavailable)],
            )
            family(
                "requests_refused_total",
                "counter",
                "Requests refused, by reason.",
                [(f'{{reason="{r}"}}', n) for r, n in sorted(self.refused.items())],
            )
            family(
                "connections_dropped_total",
                "counter",
                "Connections closed without an answer, by reason.",
                [(f'{{reason="{r}"}}', n) for r, n in sorted(self.dropped.items())],
            )
            family(
                "upstream_fetches_total",
                "counter",
                "Credentials fetches from IMDS.",
                [('{outcome="ok"}', self.fetches_ok), ('{outcome="error"}', self.fetches_failed)],
            )
        for name, (doc, value) in gauges.items():
            family(name, "gauge", doc, [("", value)])
        return "\n".join(out) + "\n"
