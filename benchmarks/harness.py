"""The machinery every scenario shares: the FakeIMDS set-up, the caller threads, the simulated day.

A simulation moves a ``FakeClock`` in fixed steps. Between steps every caller thread is parked at a
barrier; in a step each of them calls the peer's "give me credentials" a fixed number of times.
So a peer sees the same calls at the same simulated instants whatever its speed, and the figures
(requests, exceptions, expired credentials) do not depend on the machine. Wall time is measured
too, per call, for the longest wait.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from imdscreds.testing import FakeClock, FakeIMDS

# Where the simulated day starts: any fixed instant works, a fixed one keeps runs comparable.
SIM_START = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
TOKEN_PATH = "/latest/api/token"


def assert_loopback(url: str) -> str:
    """The peer's IMDS endpoint must be 127.0.0.1 before it is allowed to send anything."""
    host = urlsplit(url).hostname
    assert host == "127.0.0.1", f"refusing to run a peer against {url!r}: not 127.0.0.1"
    return url


def path_kind(method: str, path: str) -> str:
    """Requests grouped the way the table shows them."""
    if method == "PUT" and path == TOKEN_PATH:
        return "token PUT"
    if "/iam/security-credentials" in path:
        role = path.rstrip("/").rsplit("/", 1)[-1]
        return "role-list GET" if role.startswith("security-credentials") else "credentials GET"
    if path.endswith("/iam/info"):
        return "iam/info GET"
    return "other"


def requests_by_kind(requests: Counter[tuple[str, str]]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for (method, path), n in requests.items():
        kinds[path_kind(method, path)] += n
    return kinds


# -- caller threads ---------------------------------------------------------------------------


@dataclass
class StepStats:
    """What the callers saw in one step: the keys handed to them, the exceptions, the longest call."""

    calls: int = 0
    keys: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    max_wait: float = 0.0  # seconds of wall time


class Session(Protocol):
    """A peer set up against one FakeIMDS, driven step by step."""

    def step(self, calls: int) -> StepStats: ...

    def close(self) -> None: ...


class ThreadedCallers:
    """``threads`` threads calling ``get`` (which returns an access key id) in lockstep."""

    def __init__(self, get: Callable[[], str], threads: int, *, timeout: float = 300.0) -> None:
        self._get = get
        self._calls = 0
        self._stop = False
        self._start = threading.Barrier(threads + 1, timeout=timeout)
        self._done = threading.Barrier(threads + 1, timeout=timeout)
        self._slots = [StepStats() for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"bench-caller-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, index: int) -> None:
        get = self._get
        clock = time.perf_counter
        while True:
            self._start.wait()
            if self._stop:
                return
            stats = self._slots[index] = StepStats()
            for _ in range(self._calls):
                began = clock()
                try:
                    key = get()
                except Exception as exc:  # noqa: BLE001 - counting what callers would see
                    stats.errors[type(exc).__name__] += 1
                else:
                    stats.keys[key] += 1
                waited = clock() - began
                stats.max_wait = max(waited, stats.max_wait)
            stats.calls = self._calls
            self._done.wait()

    def step(self, calls: int) -> StepStats:
        self._calls = calls
        self._start.wait()
        self._done.wait()
        total = StepStats()
        for stats in self._slots:
            total.calls += stats.calls
            total.keys.update(stats.keys)
            total.errors.update(stats.errors)
            total.max_wait = max(total.max_wait, stats.max_wait)
        return total

    def close(self) -> None:
        self._stop = True
        self._start.wait()
        for thread in self._threads:
            thread.join(timeout=10)


# -- the simulated day --------------------------------------------------------------------------


@dataclass
class SimResult:
    """Everything a scenario reports about one peer's simulated run."""

    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    expired_returned: int = 0
    max_wait: float = 0.0
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    first_requests: int = 0  # requests up to the end of the first step (the cold start)
    refreshes: int = 0  # credential sets callers were handed after the first one
    # per step: simulated seconds since start, minutes left on the served credentials (min over
    # callers; None when no credentials were returned), exceptions in the step
    series: list[tuple[float, float | None, int]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)  # simulated seconds since start
    log: list[tuple[float, str, str, int | None]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


Event = tuple[float, Callable[[FakeIMDS], None]]
"""At this many simulated seconds from the start, do this to the fake."""


class Expiries:
    """Access key id -> expiration of every set the fake issued (looked up again for new keys)."""

    def __init__(self, fake: FakeIMDS) -> None:
        self._fake = fake
        self._known: dict[str, datetime] = {}

    def __getitem__(self, key: str) -> datetime:
        if key not in self._known:
            for credentials in self._fake.issued_credentials:
                self._known[credentials.access_key_id] = credentials.expiration
        return self._known[key]


def simulate(
    session: Session,
    fake: FakeIMDS,
    clock: FakeClock,
    *,
    duration: float,
    step: float,
    calls: int = 1,
    events: list[Event] | None = None,
    origin: float | None = None,
) -> SimResult:
    """Run ``duration`` simulated seconds in steps of ``step``; the fake counts from ``origin``."""
    pending = sorted(events or [], key=lambda event: event[0])
    expiries = Expiries(fake)
    result = SimResult()
    start_mono = clock.monotonic() if origin is None else origin
    seen: set[str] = set()
    elapsed = 0.0
    first = True
    while elapsed <= duration:
        while pending and pending[0][0] <= elapsed:
            pending.pop(0)[1](fake)
        now = clock.now()
        stats = session.step(calls)
        if first:
            result.first_requests = fake.count()
            first = False
        result.calls += stats.calls
        result.errors.update(stats.errors)
        result.max_wait = max(result.max_wait, stats.max_wait)
        left: float | None = None
        for key, n in stats.keys.items():
            remaining = (expiries[key] - now).total_seconds()
            if remaining <= 0:
                result.expired_returned += n
            left = remaining if left is None else min(left, remaining)
        new = stats.keys.keys() - seen
        if seen:
            result.refreshes += len(new)
        seen |= new
        result.series.append(
            (elapsed, None if left is None else left / 60, sum(stats.errors.values()))
        )
        # Jump to the next step boundary: a peer's own clock.sleep() may have moved time on a bit.
        elapsed += step
        target = start_mono + elapsed
        lag = target - clock.monotonic()
        if lag > 0:
            clock.advance(lag)
    result.requests = fake.requests
    result.log = fake.log
    result.request_times = [entry[0] - start_mono for entry in result.log]
    return result


@contextmanager
def fake_imds(fake: FakeIMDS) -> Iterator[FakeIMDS]:
    """Start ``fake``, check it is on loopback, stop it whatever happens."""
    fake.start()
    try:
        assert_loopback(fake.endpoint)
        yield fake
    finally:
        fake.stop()
        if fake.errors:
            raise RuntimeError("FakeIMDS failed inside:\n" + "\n".join(fake.errors))


def threaded_ns_per_call(credentials: Any, threads: int, calls: int, repeats: int) -> float:
    """Median over ``repeats`` of wall time / total calls with ``threads`` threads calling at once.

    ``credentials.get_frozen_credentials()`` is looked up on every call, as botocore's signer
    does. Throughput, not latency: under the GIL the threads take turns, so what 8 threads cost per
    call is the single-thread cost plus whatever lock or contention the peer adds.
    """
    samples = []
    for _ in range(repeats):
        gate = threading.Barrier(threads + 1)

        def work(gate: threading.Barrier) -> None:
            gate.wait()
            for _ in range(calls):
                credentials.get_frozen_credentials()

        workers = [threading.Thread(target=work, args=(gate,), daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        gate.wait()
        began = time.perf_counter_ns()
        for worker in workers:
            worker.join()
        samples.append((time.perf_counter_ns() - began) / (threads * calls))
    return statistics.median(samples)
