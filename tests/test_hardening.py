"""A forking server, a broken IMDS, a trickling intermediary and wrong clocks never break the caller.

Each test builds its situation for real: FakeIMDS or a scripted server on loopback, real
``os.fork()`` and ``multiprocessing`` pools, and clocks that step or stop as real ones do. The
figures each prints are the ones the README's fault matrix quotes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from imdscreds import cli
from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentials, RoleCredentialsFetcher
from imdscreds.errors import IMDSUnreachableError, TokenError
from imdscreds.imds import IMDSClient
from imdscreds.policy import RefreshPolicy
from imdscreds.provider import IMDSRefreshableCredentials
from imdscreds.refresh import RefreshingCredentials
from imdscreds.testing import FakeClock, FakeIMDS
from tests.scripted_server import CountingListener, TrickleServer, elapsed, http_response

posix_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
fork_with_threads = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
HOUR = 3600.0


def engine_for(
    endpoint: str, *, clock: Clock | None = None, **policy: Any
) -> RefreshingCredentials[RoleCredentials]:
    config = IMDSConfig.resolve(endpoint=endpoint)
    client = IMDSClient(config) if clock is None else IMDSClient(config, clock=clock)
    fetch = RoleCredentialsFetcher(client).fetch
    if clock is None:
        return RefreshingCredentials(fetch, policy=RefreshPolicy(**policy))
    return RefreshingCredentials(fetch, policy=RefreshPolicy(**policy), clock=clock)


# -- fork while a refresh is in flight ------------------------------------------------------------

# The engine a fork pool's workers inherit (a pool pickles the function, not the engine).
_INHERITED: dict[str, RefreshingCredentials[RoleCredentials]] = {}


def _pool_worker(_: int) -> tuple[str, float]:
    started = time.monotonic()
    return _INHERITED["engine"].get().access_key_id, time.monotonic() - started


def _mid_refresh(
    fake_imds: FakeIMDS, latency: float
) -> tuple[RefreshingCredentials[RoleCredentials], threading.Thread]:
    """An engine whose first fetch is under way in another thread, stuck on a slow IMDS."""
    fake_imds.latency = latency
    creds = engine_for(fake_imds.endpoint)
    fetching = threading.Thread(target=creds.get, daemon=True)
    fetching.start()
    deadline = time.monotonic() + 5
    while fake_imds.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # the token PUT has arrived: the fetcher's and client's locks are held
    assert fake_imds.count() > 0
    return creds, fetching


@posix_only
@fork_with_threads
def test_children_forked_mid_refresh_each_get_credentials_in_one_round_trip(
    fake_imds: FakeIMDS,
) -> None:
    latency = 0.2
    creds, fetching = _mid_refresh(fake_imds, latency)
    children: dict[int, int] = {}
    for _ in range(16):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 1
            try:
                os.close(read)
                started = time.monotonic()
                key = creds.get().access_key_id
                os.write(write, f"{key} {time.monotonic() - started:.3f}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        children[pid] = read
    results: list[str] = []
    deadline = time.monotonic() + 15
    for pid, read in children.items():
        while True:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            results.append(pipe.read())
    fetching.join(10)
    got = [line for line in results if line.startswith("ASIA")]
    slowest = max(float(line.split()[1]) for line in got) if got else float("nan")
    print(f"children with credentials: {len(got)}/16; slowest {slowest:.2f} s")
    assert len(got) == 16
    # A child's own cold fetch: token, role list, document, each one slow answer (plus scheduling
    # of 16 processes on a small machine).
    assert slowest < 3 * latency + 5.0


@posix_only
@fork_with_threads
def test_a_fork_pool_started_mid_refresh_gets_credentials_in_every_worker(
    fake_imds: FakeIMDS,
) -> None:
    _INHERITED["engine"], fetching = _mid_refresh(fake_imds, 0.2)
    try:
        with multiprocessing.get_context("fork").Pool(16) as pool:
            started = time.monotonic()
            result = pool.map_async(_pool_worker, range(16), chunksize=1)
            results = result.get(timeout=30)
            took = elapsed(started)
    finally:
        _INHERITED.clear()
        fetching.join(10)
    print(f"fork pool: {len(results)}/16 results in {took:.2f} s")
    assert len(results) == 16
    assert all(key.startswith("ASIA") for key, _ in results)


# -- a failure before the first success is shared and backed off ----------------------------------


def test_a_401_storm_before_any_credentials_costs_imds_a_bounded_number_of_requests(
    fake_imds: FakeIMDS,
) -> None:
    fake_imds.fail_next(401, count=1_000_000, path_prefix="/latest/meta-data/")
    creds = engine_for(fake_imds.endpoint)
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def caller() -> None:
        while time.monotonic() < stop:
            try:
                creds.get()
            except Exception as exc:  # every caller must get the typed error
                with lock:
                    errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    total = fake_imds.count()
    print(f"8 threads x 3 s against 401 on every GET: {total} requests, {len(errors):,} errors")
    assert all(isinstance(exc, TokenError) and exc.hint for exc in errors)
    # Attempts at 0, then after 0.5-1 s, 1-2 s, ...: at most 4 in 3 s, each a token PUT, a GET,
    # one new token and one more GET.
    assert total <= 16
    # Each caller has an exception object of its own (one object raised in many threads would
    # splice their tracebacks).
    assert len({id(exc) for exc in errors}) == len(errors)


def test_after_the_first_fetch_backoff_the_next_caller_tries_again(fake_imds: FakeIMDS) -> None:
    clock = FakeClock()
    imds = FakeIMDS(clock=clock).start()
    try:
        imds.fail_next(500, count=3, path_prefix="/latest/meta-data/")
        creds = engine_for(imds.endpoint, clock=clock)
        with pytest.raises(Exception, match="500"):
            creds.get()
        before = imds.count()
        with pytest.raises(Exception, match="500"):
            creds.get()  # within the backoff: the same error, no request
        assert imds.count() == before
        clock.advance(creds.policy.first_fetch_backoff[0])
        assert creds.get().access_key_id.startswith("ASIA")
    finally:
        imds.stop()


# -- every fetch ends within its total deadline --------------------------------------------------


@pytest.mark.parametrize("trickle", ["head", "body"])
def test_a_trickling_answer_ends_the_fetch_within_its_total_deadline(trickle: str) -> None:
    head, body = http_response(200, b"token-token-token-token")
    config = IMDSConfig.resolve(timeout=1, attempts=3)
    with TrickleServer(head, body, delay=0.25, trickle=trickle) as server:
        config = IMDSConfig.resolve(endpoint=server.endpoint, timeout=1, attempts=3)
        started = time.monotonic()
        with pytest.raises(IMDSUnreachableError), IMDSClient(config) as client:
            RoleCredentialsFetcher(client).fetch()
        took = elapsed(started)
    print(f"trickled {trickle}: gave up after {took:.2f} s (deadline {config.total_timeout:g} s)")
    assert took <= config.total_timeout + 0.5


def test_total_timeout_is_attempts_plus_two_timeouts() -> None:
    assert IMDSConfig.resolve(timeout=1, attempts=3).total_timeout == 5
    assert IMDSConfig.resolve(timeout=2.5, attempts=1).total_timeout == 7.5


# -- clocks that are wrong, step, or stop ---------------------------------------------------------


class HostClock:
    """This host's clock: true time from ``true``, its wall clock off by ``error`` seconds."""

    def __init__(self, true: FakeClock) -> None:
        self.true = true
        self.error = 0.0

    def monotonic(self) -> float:
        return self.true.monotonic()

    def now(self) -> datetime:
        return self.true.now() + timedelta(seconds=self.error)

    def sleep(self, seconds: float) -> None:
        self.true.sleep(seconds)


def expired_seconds(
    creds: RefreshingCredentials[RoleCredentials],
    true: FakeClock,
    hours: float,
    *,
    step: float = 60.0,
    at: dict[float, Callable[[], None]] | None = None,
) -> float:
    """Drive ``hours`` of true time calling ``get()`` each ``step``; seconds of expired hand-outs."""
    expired = 0.0
    events = dict(at or {})
    t = 0.0
    while t < hours * HOUR:
        for when in [when for when in events if when <= t]:
            events.pop(when)()
        if creds.get().expiration <= true.now():
            expired += step
        true.advance(step)
        t += step
    return expired


@pytest.fixture
def true_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rotating_imds(true_clock: FakeClock) -> Any:
    # Credentials for 6 h, new ones 5 min before the old expire (what IMDS promises, no more).
    imds = FakeIMDS(clock=true_clock, validity=6 * HOUR, rotation=6 * HOUR - 300).start()
    yield imds
    imds.stop()


def test_a_wall_clock_3_hours_behind_at_the_fetch_then_corrected_hands_out_nothing_expired(
    true_clock: FakeClock, rotating_imds: FakeIMDS
) -> None:
    host = HostClock(true_clock)
    host.error = -3 * HOUR
    creds = engine_for(rotating_imds.endpoint, clock=host)

    def corrected() -> None:
        host.error = 0.0

    seconds = expired_seconds(creds, true_clock, 24, at={2 * HOUR: corrected})
    print(
        f"wall clock 3 h behind, corrected after 2 h: {seconds / HOUR:.1f} h of expired hand-outs"
    )
    assert seconds == 0


def test_a_wall_clock_stepped_back_a_day_hands_out_nothing_expired(
    true_clock: FakeClock, rotating_imds: FakeIMDS
) -> None:
    host = HostClock(true_clock)
    creds = engine_for(rotating_imds.endpoint, clock=host)

    def stepped_back() -> None:
        host.error = -24 * HOUR

    seconds = expired_seconds(creds, true_clock, 24, at={HOUR: stepped_back, 0.0: stepped_back})
    print(f"wall clock a day behind: {seconds / HOUR:.1f} h of expired hand-outs")
    assert seconds == 0


def test_a_host_suspended_8_hours_refreshes_at_the_next_read(
    true_clock: FakeClock, rotating_imds: FakeIMDS
) -> None:
    creds = engine_for(rotating_imds.endpoint, clock=true_clock)
    noticed: list[float] = []

    def suspend() -> None:
        true_clock.suspend(8 * HOUR)  # monotonic stands still: only the wall clock says so
        started = time.monotonic()
        # The process's clock watcher looks every couple of seconds on the system clock (at once
        # on a fake one); until it has, a read in that moment would still get the old set.
        while not creds.refresh_due() and elapsed(started) < 5:
            time.sleep(0.001)
        noticed.append(elapsed(started))

    seconds = expired_seconds(creds, true_clock, 24, at={HOUR: suspend})
    print(
        f"suspended 8 h: {seconds / HOUR:.1f} h of expired hand-outs; the watcher noticed in "
        f"{noticed[0] * 1000:.0f} ms (real)"
    )
    assert seconds == 0


def test_after_a_suspend_the_prefetch_thread_refreshes_without_a_caller(
    true_clock: FakeClock, rotating_imds: FakeIMDS
) -> None:
    with engine_for(rotating_imds.endpoint, clock=true_clock, prefetch=True) as creds:
        first = creds.get()
        true_clock.advance(HOUR)
        true_clock.suspend(8 * HOUR)  # monotonic stands still: only the wall clock says so
        started = time.monotonic()
        while creds.peek() is first and elapsed(started) < 5:
            time.sleep(0.01)
        took = elapsed(started)
        fresh = creds.peek()
    print(f"prefetch thread refreshed {took:.2f} s (real) after an 8 h suspend")
    assert fresh is not None
    assert fresh is not first
    assert fresh.expiration > true_clock.now()


# -- proxies are never used, whatever session is passed -------------------------------------------


def test_a_callers_session_with_proxies_never_reaches_the_proxy(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CountingListener() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        session = requests.Session()  # trust_env on, as a caller's session usually is
        session.proxies = {"http": proxy.url, "all": proxy.url}
        config = IMDSConfig.resolve(endpoint=fake_imds.endpoint)
        credentials = RoleCredentialsFetcher(IMDSClient(config, session=session)).fetch()
    print(f"connections to the proxy: {proxy.connections}")
    assert credentials.access_key_id.startswith("ASIA")
    assert proxy.connections == 0
    assert fake_imds.count() == 3


# -- credential_process gets the provider's static stability ---------------------------------------


@pytest.mark.parametrize("fmt", ["credential-process", "env", "json"])
def test_credentials_command_extends_credentials_imds_hands_out_expired(
    fmt: str, capsys: pytest.CaptureFixture[str], fake_imds_factory: Callable[..., FakeIMDS]
) -> None:
    imds = fake_imds_factory(scenario="expired")
    code = cli.main(["credentials", "--endpoint", imds.endpoint, "--format", fmt])
    out, err = capsys.readouterr()
    served = imds.current_credentials
    assert code == 0
    assert served.expiration < datetime.now(served.expiration.tzinfo)  # IMDS's set is expired
    if fmt == "env":
        line = next(line for line in out.splitlines() if "AWS_CREDENTIAL_EXPIRATION=" in line)
        stamp = shlex.split(line.split("=", 1)[1])[0]
    else:
        stamp = json.loads(out)["Expiration"]
    extended = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    left = extended - datetime.now(extended.tzinfo)
    print(f"{fmt}: Expiration extended to {left.total_seconds() / 60:.1f} min from now")
    assert left >= timedelta(minutes=4)
    assert err.count("WARNING") == 1
    assert served.access_key_id in err
    assert served.secret_access_key not in err
    assert served.token not in err


# -- stress: 64 threads through rotations ---------------------------------------------------------


def _hammer(
    credentials: IMDSRefreshableCredentials,
    clock: Clock,
    issued: Callable[[], list[RoleCredentials]],
    *,
    threads: int,
    keep_going: Callable[[], bool],
) -> dict[str, int]:
    """``threads`` callers of get_frozen_credentials() while ``keep_going()``; what went wrong."""
    figures = {"calls": 0, "errors": 0, "mixed": 0, "expired": 0}
    lock = threading.Lock()
    seen: set[tuple[str, str, str]] = set()

    def caller() -> None:
        mine = dict.fromkeys(figures, 0)
        triples: set[tuple[str, str, str]] = set()
        expired_keys: list[tuple[str, datetime]] = []
        while keep_going():
            before = clock.now()
            try:
                frozen = credentials.get_frozen_credentials()
            except Exception:  # every exception is a failure of the run
                mine["errors"] += 1
                continue
            mine["calls"] += 1
            triples.add((frozen.access_key, frozen.secret_key, frozen.token))
            expired_keys.append((frozen.access_key, before))
        by_key = {c.access_key_id: c for c in issued()}
        for key, secret, token in triples:
            match = by_key.get(key)
            if match is None or (match.secret_access_key, match.token) != (secret, token):
                mine["mixed"] += 1
        # Expired at the instant of the call: the set's expiry is before the clock read ahead of it.
        mine["expired"] = sum(1 for key, at in expired_keys if by_key[key].expiration <= at)
        with lock:
            seen.update(triples)
            for name, value in mine.items():
                figures[name] += value

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    figures["sets"] = len({key for key, _, _ in seen})
    return figures


def _credentials_gets(imds: FakeIMDS) -> int:
    # Answered ones: a GET refused for a token IMDS's clock has expired is retried with a new one.
    return sum(
        1
        for _, method, path, status in imds.log
        if method == "GET" and path.rstrip("/").count("/") == 5 and status == 200
    )


def test_64_threads_through_24_fake_hours_of_rotations(true_clock: FakeClock) -> None:
    imds = FakeIMDS(clock=true_clock).start()  # 6 h credentials, a new set every hour
    try:
        # The engine runs on the simulation's clock, which a driver thread moves 30 s a
        # millisecond; the wire keeps real time (its timeouts and the fetch's deadline are about
        # how long a caller really waits, and on that clock any fetch would outlast them).
        config = IMDSConfig.resolve(endpoint=imds.endpoint, timeout=5)
        client = IMDSClient(config)
        credentials = IMDSRefreshableCredentials(
            RoleCredentialsFetcher(client).fetch, clock=true_clock, client=client
        )
        end = true_clock.now() + timedelta(hours=24)
        stop = threading.Event()

        def drive() -> None:
            while true_clock.now() < end:
                true_clock.advance(30.0)
                time.sleep(0.001)
            stop.set()

        driver = threading.Thread(target=drive)
        driver.start()
        figures = _hammer(
            credentials,
            true_clock,
            lambda: imds.issued_credentials,
            threads=64,
            keep_going=lambda: not stop.is_set(),
        )
        driver.join(60)
        gets = _credentials_gets(imds)
    finally:
        imds.stop()
    print(f"64 threads, 24 fake hours: {figures}; credentials GETs {gets}")
    assert figures["calls"] > 0
    assert figures["errors"] == figures["mixed"] == figures["expired"] == 0
    assert gets == figures["sets"]  # one credentials GET per set handed out: per rotation


def test_64_threads_through_rotations_of_short_lived_credentials_on_the_real_clock() -> None:
    # 6 s credentials, a new set every 2 s: a rotation every few seconds of real time.
    imds = FakeIMDS(validity=6.0, rotation=2.0).start()
    try:
        policy = RefreshPolicy(
            advisory_window=3.0,
            mandatory_window=1.0,
            advisory_jitter=0.5,
            retry_backoff=(1.0, 2.0),
            stale_extension=(1.0, 2.0),
        )
        # FakeIMDS runs in this process, so its thread competes for the GIL with 64 busy callers:
        # a generous timeout keeps a starved server from turning into a retry (a second GET).
        config = IMDSConfig.resolve(endpoint=imds.endpoint, timeout=5)
        client = IMDSClient(config)
        credentials = IMDSRefreshableCredentials(
            RoleCredentialsFetcher(client).fetch, policy=policy, client=client
        )
        stop = time.monotonic() + 12.0
        figures = _hammer(
            credentials,
            SYSTEM_CLOCK,
            lambda: imds.issued_credentials,
            threads=64,
            keep_going=lambda: time.monotonic() < stop,
        )
        gets = _credentials_gets(imds)
    finally:
        imds.stop()
    print(f"64 threads, 12 real seconds: {figures}; credentials GETs {gets}")
    assert figures["sets"] >= 3
    assert figures["errors"] == figures["mixed"] == figures["expired"] == 0
    assert gets == figures["sets"]


def test_a_fake_clock_advanced_while_it_is_read_is_not_taken_for_a_suspend(
    true_clock: FakeClock, rotating_imds: FakeIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    # A simulation advances its clock from another thread; a reading of the two clocks split by
    # such a jump (monotonic before it, wall after) must not look like the host having slept.
    class JumpingClock(HostClock):
        jumping = False

        def now(self) -> datetime:
            if self.jumping:
                self.true.advance(60.0)  # another thread's step, between the two readings
            return super().now()

    clock = JumpingClock(true_clock)
    creds = engine_for(rotating_imds.endpoint, clock=clock)
    first = creds.get()
    caplog.set_level("INFO", logger="imdscreds.refresh")
    clock.jumping = True
    time.sleep(0.1)  # the clock watcher looks every few ms on a clock that is not the system's
    clock.jumping = False
    stood_still = [r for r in caplog.records if "stood still" in r.getMessage()]
    print(f"clock advanced {true_clock.monotonic() - 1000:.0f} s while read; suspends seen: 0")
    assert stood_still == []
    assert creds.get() is first  # still hours from its refresh: nothing moved its deadlines
