"""Scenario 9: asyncio. imdscreds.aio against aiobotocore's own IMDS credentials, same FakeIMDS.

aiobotocore's side is what its credential chain builds: ``AioInstanceMetadataFetcher`` (1 attempt,
1 s timeout) pointed at the fake, and the ``AioRefreshableCredentials`` that
``AioInstanceMetadataProvider.load()`` makes from its first answer, plus ``time_fetcher=clock.now``
on a ``FakeClock``; ``botocore.utils.get_current_datetime`` (read by the fetcher's expiry
extension) is swapped for the same clock, as for botocore in scenarios 3 to 6. imdscreds takes the
clock through its constructor. Both sides then share one credentials object across loops and
threads, as an ``AioSession`` (which keeps the credentials it loaded) does.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.harness import assert_loopback, fake_imds, requests_by_kind
from benchmarks.peers import BotocorePeer
from benchmarks.scenarios import Settings, Table
from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentials
from imdscreds.testing import FakeClock, FakeIMDS

VALIDITY = 6 * 3600.0
SLOW_IMDS = 0.5  # seconds IMDS takes to answer in the event-loop lag measurement
TASKS = 200
FAR_FUTURE = timedelta(days=3650)


def unavailable() -> str | None:
    try:
        import aiobotocore  # noqa: F401
    except ImportError:
        return "aiobotocore is not installed (pip install -e '.[aio]')"
    return None


# -- building either side -------------------------------------------------------------------------


def _ours(endpoint: str, clock: FakeClock) -> Awaitable[Any]:
    from imdscreds.aio import AioIMDSCredentialProvider

    config = IMDSConfig.resolve(
        endpoint=assert_loopback(endpoint), environ={}, config_file=os.devnull
    )
    return _load(AioIMDSCredentialProvider(config, clock=clock))


async def _theirs(endpoint: str, clock: FakeClock) -> Any:
    from aiobotocore.credentials import AioInstanceMetadataProvider, AioRefreshableCredentials
    from aiobotocore.utils import AioInstanceMetadataFetcher
    from dateutil.parser import parse

    fetcher = AioInstanceMetadataFetcher(
        timeout=1,
        num_attempts=1,
        env={},
        config={"ec2_metadata_service_endpoint": assert_loopback(endpoint)},
    )
    data = await fetcher.retrieve_iam_role_credentials()
    assert data, "aiobotocore's fetcher found no credentials"
    return AioRefreshableCredentials(
        access_key=data["access_key"],
        secret_key=data["secret_key"],
        token=data["token"],
        expiry_time=parse(data["expiry_time"]),
        refresh_using=fetcher.retrieve_iam_role_credentials,
        method=AioInstanceMetadataProvider.METHOD,
        time_fetcher=clock.now,
    )


SIDES: dict[str, Callable[[str, FakeClock], Awaitable[Any]]] = {
    "imdscreds": _ours,
    "aiobotocore": _theirs,
}


@contextmanager
def _side(name: str, fake: FakeIMDS, clock: FakeClock) -> Iterator[Callable[[], Awaitable[Any]]]:
    """The clock seams for ``name``, and how to build its credentials against ``fake``."""
    seams = BotocorePeer().seams(clock) if name == "aiobotocore" else nullcontext()
    with seams:
        yield lambda: SIDES[name](fake.endpoint, clock)


async def _load(provider: Any) -> Any:
    credentials = await provider.load()
    assert credentials is not None, f"{provider!r} found no credentials"
    return credentials


def _close(credentials: Any) -> None:
    close = getattr(credentials, "close", None)  # aiobotocore's hold nothing to close
    if close is not None:
        close()


# -- the hot path ---------------------------------------------------------------------------------


def _median_ns(batch: Callable[[], Awaitable[int]], calls: int, repeats: int) -> Awaitable[float]:
    async def run() -> float:
        samples = [await batch() / calls for _ in range(repeats)]
        return statistics.median(samples)

    return run()


def hot_path(settings: Settings) -> dict[str, float]:
    """ns per ``await credentials.get_frozen_credentials()``, hours from expiry, real clock."""
    from aiobotocore.credentials import AioRefreshableCredentials

    from imdscreds.aio import AioIMDSRefreshableCredentials

    expiry = datetime.now(timezone.utc) + FAR_FUTURE

    def fetch() -> RoleCredentials:
        return RoleCredentials("ASIABENCHMARK0000001", "secret", "token", expiry, "benchmark")

    def refresh() -> dict[str, str]:  # never called: the expiry is years away
        raise AssertionError("aiobotocore refreshed during the benchmark")

    ours = AioIMDSRefreshableCredentials(fetch)
    theirs = AioRefreshableCredentials(
        "ASIABENCHMARK0000001", "secret", "token", expiry, refresh, "iam-role"
    )
    constant = ("ASIABENCHMARK0000001", "secret", "token")

    async def floor() -> Any:
        return constant

    calls = settings.hot_calls

    async def bare() -> int:
        start = time.perf_counter_ns()
        for _ in range(calls):
            await floor()
        return time.perf_counter_ns() - start

    def reads(credentials: Any) -> Callable[[], Awaitable[int]]:
        async def batch() -> int:
            # The signer looks the method up on every request; so does this loop.
            start = time.perf_counter_ns()
            for _ in range(calls):
                await credentials.get_frozen_credentials()
            return time.perf_counter_ns() - start

        return batch

    async def run() -> dict[str, float]:
        await ours.get_frozen_credentials()  # the first fetch
        figures = {}
        for name, batch in (
            ("floor", bare),
            ("imdscreds", reads(ours)),
            ("aiobotocore", reads(theirs)),
        ):
            await batch()  # warm-up
            figures[name] = await _median_ns(batch, calls, settings.hot_repeats)
        return figures

    figures = asyncio.run(run())
    ours.close()
    return figures


# -- requests per refresh -------------------------------------------------------------------------


async def _settle(credentials: Any) -> None:
    # imdscreds' refresh in the advisory window runs in its thread while callers carry on; let it
    # land before the simulated clock moves again. (aiobotocore's callers await theirs.)
    if not hasattr(credentials, "engine"):
        return
    for _ in range(2000):
        if not credentials.refresh_needed():
            return
        await asyncio.sleep(0.001)


def per_refresh(name: str, step: float) -> dict[str, float]:
    """24 simulated hours, a read every ``step`` simulated seconds, IMDS rotating hourly (6 h
    validity)."""
    clock = FakeClock()
    with fake_imds(FakeIMDS(clock=clock)) as fake, _side(name, fake, clock) as build:

        async def run() -> int:
            credentials = await build()
            fake.reset_counts()
            keys = {(await credentials.get_frozen_credentials()).access_key}
            for _ in range(int(24 * 3600 / step)):
                clock.advance(step)
                keys.add((await credentials.get_frozen_credentials()).access_key)
                await _settle(credentials)
            _close(credentials)
            return len(keys) - 1

        refreshes = asyncio.run(run())
        kinds = requests_by_kind(fake.requests)
    return {
        "refreshes": refreshes,
        "requests": sum(kinds.values()) / refreshes,
        "credentials": kinds["credentials GET"] / refreshes,
        "tokens": kinds["token PUT"] / refreshes,
        "role lists": kinds["role-list GET"] / refreshes,
    }


# -- single flight, event-loop lag ----------------------------------------------------------------


def mandatory_crowd(name: str) -> dict[str, float]:
    """TASKS tasks read at once at the start of the mandatory window (IMDS answering in 200 ms)."""
    clock = FakeClock()
    with fake_imds(FakeIMDS(clock=clock)) as fake, _side(name, fake, clock) as build:

        async def run() -> dict[str, float]:
            credentials = await build()
            clock.advance(VALIDITY - 59.0)
            fake.latency = 0.2
            fake.reset_counts()
            began = time.perf_counter()
            results = await asyncio.gather(
                *(credentials.get_frozen_credentials() for _ in range(TASKS)),
                return_exceptions=True,
            )
            took = time.perf_counter() - began
            _close(credentials)
            failed = sum(isinstance(r, BaseException) for r in results)
            fetches = requests_by_kind(fake.requests)["credentials GET"]
            return {"fetches": fetches, "seconds": took, "failed": failed}

        return asyncio.run(run())


async def _lag_during(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """The event loop's worst lateness (s) for a 1 ms sleeper while ``work`` runs, and its time."""
    worst = 0.0
    done = asyncio.Event()

    async def sleeper() -> None:
        nonlocal worst
        while not done.is_set():
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - began - 0.001)

    ticking = asyncio.create_task(sleeper())
    await asyncio.sleep(0.02)
    worst = 0.0
    began = time.perf_counter()
    await work()
    took = time.perf_counter() - began
    done.set()
    await ticking
    return worst, took


def loop_lag(name: str) -> dict[str, float]:
    """A caller waiting for a mandatory refresh from an IMDS that answers in SLOW_IMDS seconds;
    beside it the same sleeper's worst lateness over as long with nothing else running (what the
    machine's scheduling costs, not the library)."""
    clock = FakeClock()
    with fake_imds(FakeIMDS(clock=clock)) as fake, _side(name, fake, clock) as build:

        async def run() -> dict[str, float]:
            credentials = await build()
            clock.advance(VALIDITY - 30.0)
            fake.latency = SLOW_IMDS
            lag, took = await _lag_during(credentials.get_frozen_credentials)
            idle, _ = await _lag_during(lambda: asyncio.sleep(took))
            _close(credentials)
            return {"lag": lag, "took": took, "idle": idle}

        return asyncio.run(run())


# -- loops and threads ----------------------------------------------------------------------------


def _eight_at_once(credentials: Any, failures: list[str]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        results = await asyncio.gather(
            *(credentials.get_frozen_credentials() for _ in range(8)), return_exceptions=True
        )
        failures.extend(type(r).__name__ for r in results if isinstance(r, BaseException))

    return run


def loops_and_threads(name: str) -> dict[str, Any]:
    """8 concurrent reads needing a refresh in each of two asyncio.run() calls, then in each of
    two threads running a loop at once, on one credentials object; failed reads per phase."""
    clock = FakeClock()
    failures: dict[str, list[str]] = {"runs": [], "threads": []}
    with fake_imds(FakeIMDS(clock=clock)) as fake, _side(name, fake, clock) as build:
        fake.latency = 0.05
        credentials = asyncio.run(build())
        for _ in range(2):
            clock.advance(VALIDITY - 30.0)
            asyncio.run(_eight_at_once(credentials, failures["runs"])())
        clock.advance(VALIDITY - 30.0)
        threads = [
            threading.Thread(
                target=asyncio.run, args=(_eight_at_once(credentials, failures["threads"])(),)
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        _close(credentials)
    counts: dict[str, Any] = {phase: len(names) for phase, names in failures.items()}
    counts["names"] = sorted({n for names in failures.values() for n in names})
    return counts


# -- outage ---------------------------------------------------------------------------------------


def outage(name: str) -> dict[str, Any]:
    """IMDS down for 30 simulated minutes across the expiry; 32 tasks read every minute."""
    clock = FakeClock()
    with (
        fake_imds(FakeIMDS(clock=clock, rotation=VALIDITY)) as fake,
        _side(name, fake, clock) as build,
    ):

        async def run() -> dict[str, Any]:
            credentials = await build()
            first = await credentials.get_frozen_credentials()
            raised: list[str] = []
            reads = 0
            back_after = -1.0
            clock.advance(VALIDITY - 25 * 60.0)
            fake.scenario = "outage"
            for minute in range(60):
                if minute == 30:
                    fake.scenario = "healthy"
                results = await asyncio.gather(
                    *(credentials.get_frozen_credentials() for _ in range(32)),
                    return_exceptions=True,
                )
                reads += len(results)
                raised += [type(r).__name__ for r in results if isinstance(r, BaseException)]
                fresh = [r for r in results if not isinstance(r, BaseException) and r != first]
                if minute >= 30 and back_after < 0 and fresh:
                    back_after = float(minute - 30)
                await _settle(credentials)
                clock.advance(60.0)
            _close(credentials)
            return {"raised": len(raised), "names": sorted(set(raised)), "reads": reads,
                    "back_after": back_after}  # fmt: skip

        return asyncio.run(run())


# -- the table ------------------------------------------------------------------------------------


def table(settings: Settings) -> Table:
    result = Table(
        9,
        "asyncio: imdscreds.aio against aiobotocore's own IMDS credentials",
        "Each row one measurement; the same FakeIMDS on 127.0.0.1 serves both. "
        f"Hot path: median of {settings.hot_repeats} batches of {settings.hot_calls:,} awaits.",
        ["measurement", "imdscreds.aio", "aiobotocore"],
    )
    why = unavailable()
    if why is not None:
        result.notes.append(f"Not run: {why}.")
        return result
    hot = hot_path(settings)
    sides = list(SIDES)
    data: dict[str, dict[str, Any]] = {name: {} for name in sides}
    for name in sides:
        data[name]["per_refresh"] = per_refresh(name, settings.step)
        data[name]["crowd"] = mandatory_crowd(name)
        data[name]["lag"] = loop_lag(name)
        data[name]["loops"] = loops_and_threads(name)
        data[name]["outage"] = outage(name)
    data["imdscreds"]["hot"] = hot["imdscreds"]
    data["aiobotocore"]["hot"] = hot["aiobotocore"]
    data["floor"] = {"hot": hot["floor"]}
    result.data = data

    def refresh(d: dict[str, Any]) -> str:
        f = d["per_refresh"]
        return (
            f"{f['requests']:.2f} ({f['credentials']:.2f} credentials GET, {f['tokens']:.2f} "
            f"token PUT, {f['role lists']:.2f} role-list GET; {f['refreshes']:.0f} refreshes)"
        )

    def crowd(d: dict[str, Any]) -> str:
        c = d["crowd"]
        failed = f", **{c['failed']} failed**" if c["failed"] else ""
        return f"{c['fetches']} fetch(es), {c['seconds'] * 1e3:,.0f} ms{failed}"

    def lag(d: dict[str, Any]) -> str:
        g = d["lag"]
        return (
            f"{g['lag'] * 1e3:.1f} ms (caller waited {g['took'] * 1e3:,.0f} ms; idle loop "
            f"{g['idle'] * 1e3:.1f} ms)"
        )

    def failed(count: int, names: list[str]) -> str:
        return f"**{count}** ({', '.join(names)})" if count else "0"

    ours, theirs = data["imdscreds"], data["aiobotocore"]
    result.rows = [
        [
            "ns per `await get_frozen_credentials()`; a bare `await` of a coroutine returning a "
            f"constant: {hot['floor']:,.0f}",
            f"{hot['imdscreds']:,.0f} ({hot['imdscreds'] / hot['floor']:.2f}x the bare await)",
            f"{hot['aiobotocore']:,.0f} ({hot['aiobotocore'] / hot['imdscreds']:.0f}x imdscreds')",
        ],
        [
            "IMDS requests per refresh, 24 simulated h, hourly rotation, a read every "
            f"{settings.step:g} simulated s",
            refresh(ours),
            refresh(theirs),
        ],
        [
            f"{TASKS} tasks reading at the start of the mandatory window (IMDS answering in 200 ms)",
            crowd(ours),
            crowd(theirs),
        ],
        [
            "worst event-loop lag while a caller waits for a mandatory refresh (IMDS answering in "
            f"{SLOW_IMDS * 1e3:.0f} ms)",
            lag(ours),
            lag(theirs),
        ],
        [
            "failed reads: 8 concurrent in each of two `asyncio.run()` calls, one credentials object",
            failed(ours["loops"]["runs"], ours["loops"]["names"]),
            failed(theirs["loops"]["runs"], theirs["loops"]["names"]),
        ],
        [
            "failed reads: the same, from two threads each running a loop",
            failed(ours["loops"]["threads"], ours["loops"]["names"]),
            failed(theirs["loops"]["threads"], theirs["loops"]["names"]),
        ],
        [
            "caller exceptions, 30 min IMDS outage across the expiry, 32 tasks a minute "
            f"({ours['outage']['reads']:,} reads)",
            failed(ours["outage"]["raised"], ours["outage"]["names"]),
            failed(theirs["outage"]["raised"], theirs["outage"]["names"]),
        ],
    ]
    result.notes.append(
        "aiobotocore's refresh lock is an `asyncio.Lock`, which binds to the first loop that "
        "contends it; imdscreds' callers wait on a `concurrent.futures.Future`, which belongs to "
        "no loop, for a blocking IMDS request made in a thread of its own. The idle-loop figure is "
        "the same 1 ms sleeper's worst lateness with nothing else running: on a busy machine it is "
        "scheduling, not either library."
    )
    return result
