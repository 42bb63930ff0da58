"""A process's life with the engine in it: start-up, exit, interrupts, churn, long rotation runs.

``python lifecycle_app.py MODE``; the IMDS endpoint comes from ``AWS_EC2_METADATA_SERVICE_ENDPOINT``
for the modes that talk to the test's FakeIMDS, while ``churn``, ``rotations`` and ``threads``
run their own FakeIMDS on a fake clock. Each mode prints JSON lines (see ``rotations.report``);
the last one is its answer.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import botocore.session
from rotations import report

import imdscreds
from imdscreds import IMDSConfig, IMDSCredentialProvider, RefreshPolicy
from imdscreds.testing import FakeClock, FakeIMDS

PREFETCH = RefreshPolicy(prefetch=True)


def _process_figures() -> dict[str, int]:
    """RSS (kB), thread count and open file descriptors, as the kernel counts them, once what was
    dropped is collected (botocore sessions hold reference cycles) and its threads have ended."""
    gc.collect()
    time.sleep(0.1)
    rss = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return {
        "rss_kb": rss,
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
    }


def _fake_clock_provider(clock: FakeClock, policy: RefreshPolicy) -> Any:
    provider = IMDSCredentialProvider(IMDSConfig.resolve(), policy=policy, clock=clock)
    credentials = provider.load()
    assert credentials is not None
    return credentials


def _measured(step: Callable[[], None], count: int, imds: FakeIMDS) -> dict[str, Any]:
    """Warm up with 20 steps, then take ``count``, measuring at the start, midway and the end."""
    for _ in range(20):  # imports, connection pools, the clock watcher's thread
        step()
    figures = {"start": _process_figures()}
    for done in range(1, count + 1):
        step()
        if done % 100 == 0:
            imds.reset_counts()  # the fake's own request log is not the engine's to keep
        if done == count // 2:
            figures["mid"] = _process_figures()
    figures["end"] = _process_figures()
    return figures


def exit_normal() -> None:
    session = botocore.session.Session()
    imdscreds.install(session, policy=PREFETCH)
    report(key=session.get_credentials().get_frozen_credentials().access_key, exiting=True)


def exit_from_thread() -> None:
    session = botocore.session.Session()
    imdscreds.install(session, policy=PREFETCH)
    key = session.get_credentials().get_frozen_credentials().access_key

    def leave() -> None:
        report(key=key, exiting=True)
        sys.exit(0)  # ends this thread only (SystemExit in a thread is silent)

    leaver = threading.Thread(target=leave, name="leaver")
    leaver.start()
    leaver.join()


def exit_mid_refresh() -> None:
    # The engine's clock is a fake one set to now: advancing it past the refresh point makes the
    # prefetch thread refresh at once, against the IMDS the test has turned into a black hole.
    clock = FakeClock(start=datetime.now(timezone.utc), monotonic_start=time.monotonic())
    credentials = _fake_clock_provider(clock, PREFETCH)
    key = credentials.get_frozen_credentials().access_key
    report(key=key, ready=True)
    sys.stdin.readline()  # the test answers once IMDS holds every request
    clock.advance(6 * 3600 - 60)
    deadline = time.monotonic() + 5
    while not credentials.engine._lock.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # well into the exchange
    report(key=key, in_flight=credentials.engine._lock.locked(), exiting=True)


def interrupted_refresh() -> None:
    clock = FakeClock(start=datetime.now(timezone.utc), monotonic_start=time.monotonic())
    credentials = _fake_clock_provider(clock, RefreshPolicy())
    report(key=credentials.get_frozen_credentials().access_key, ready=True)
    sys.stdin.readline()  # the test holds IMDS's answers from now on
    clock.advance(6 * 3600 - 60)  # past the mandatory point: the next read refreshes here
    report(refreshing=True)
    began = time.monotonic()
    try:
        credentials.get_frozen_credentials()
    except KeyboardInterrupt:
        frames = [
            f"{frame.filename}:{frame.name}" for frame in traceback.extract_tb(sys.exc_info()[2])
        ]
        report(
            interrupted=True,
            after=time.monotonic() - began,
            lock_held=credentials.engine._lock.locked(),
            frames=frames,
        )
    else:
        report(interrupted=False)
        return
    sys.stdin.readline()  # the test lets IMDS answer again
    again = credentials.get_frozen_credentials().access_key
    report(again=again, lock_held=credentials.engine._lock.locked(), done=True)


def churn() -> None:
    """Session per request: a botocore session, a fresh provider, one read, dropped; 1,000 times."""
    count = int(os.environ.get("LIFECYCLE_COUNT", "1000"))
    with FakeIMDS() as imds:
        os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
        keys: set[str] = set()

        def one() -> None:
            session = botocore.session.Session()
            imdscreds.install(session, policy=PREFETCH)
            keys.add(session.get_credentials().get_frozen_credentials().access_key)

        figures = _measured(one, count, imds)
    report(keys=len(keys), made=count, **figures)


def rotations() -> None:
    """One provider through N rotations of a FakeIMDS on a fake clock, read after each."""
    count = int(os.environ.get("LIFECYCLE_COUNT", "2000"))
    clock = FakeClock(start=datetime.now(timezone.utc))
    with FakeIMDS(clock=clock, rotation=600.0, validity=1200.0) as imds:
        os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
        credentials = _fake_clock_provider(
            clock, RefreshPolicy(advisory_window=300.0, mandatory_window=60.0)
        )
        keys: set[str] = set()

        def rotate() -> None:
            clock.advance(600.0)
            keys.add(credentials.get_frozen_credentials().access_key)

        figures = _measured(rotate, count, imds)
        gets = len(imds.issued_credentials)
    report(keys=len(keys), rotations=count, issued=gets, **figures)


def threads() -> None:
    """32 threads read one provider while a fake clock drives 200 rotations; count what they saw."""
    count = int(os.environ.get("LIFECYCLE_COUNT", "200"))
    clock = FakeClock(start=datetime.now(timezone.utc))
    errors: list[str] = []
    expired = [0]
    seen: set[str] = set()
    reads = [0]
    lock = threading.Lock()
    began = time.perf_counter()
    with FakeIMDS(clock=clock, rotation=600.0, validity=1200.0) as imds:
        os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
        credentials = _fake_clock_provider(
            clock,
            RefreshPolicy(advisory_window=300.0, mandatory_window=60.0, prefetch=True),
        )
        stop = threading.Event()
        expiry: dict[str, datetime] = {}

        def reader() -> None:
            mine: set[str] = set()
            n = 0
            while not stop.is_set():
                now = clock.now()
                try:
                    frozen = credentials.get_frozen_credentials()
                except Exception as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    continue
                n += 1
                if frozen.access_key not in mine:
                    mine.add(frozen.access_key)
                    with lock:
                        seen.add(frozen.access_key)
                at = expiry.get(frozen.access_key)
                if at is not None and at <= now:
                    with lock:
                        expired[0] += 1
                if n % 256 == 0:
                    # A pause, so the thread moving the clock gets the GIL on every Python
                    # (3.10 hands it back to the 32 readers for whole seconds otherwise).
                    time.sleep(0.0005)
            with lock:
                reads[0] += n

        workers = [threading.Thread(target=reader) for _ in range(32)]
        for worker in workers:
            worker.start()
        rng = random.Random(5)
        for _ in range(count):
            for issued in imds.issued_credentials[-3:]:
                expiry[issued.access_key_id] = issued.expiration
            clock.advance(600.0)
            time.sleep(0.002 + rng.random() * 0.003)
        stop.set()
        for worker in workers:
            worker.join(10)
        alive = sum(worker.is_alive() for worker in workers)
        gets = sum(n for (_, path), n in imds.requests.items() if path.endswith(imds.role_name))
        issued_count = len(imds.issued_credentials)
    report(
        python=sys.version.split()[0],
        gil=getattr(sys, "_is_gil_enabled", lambda: True)(),
        rotations=count,
        issued=issued_count,
        seen=len(seen),
        gets=gets,
        reads=reads[0],
        errors=errors[:5],
        expired=expired[0],
        alive=alive,
        seconds=round(time.perf_counter() - began, 3),
    )


MODES = {
    "exit-normal": exit_normal,
    "exit-thread": exit_from_thread,
    "exit-mid-refresh": exit_mid_refresh,
    "interrupted": interrupted_refresh,
    "churn": churn,
    "rotations": rotations,
    "threads": threads,
}

if __name__ == "__main__":
    MODES[sys.argv[1]]()
