"""The refresh engine, driven by a stub fetch function and a fake clock (no IMDS, no network)."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from imdscreds.credentials import RoleCredentials
from imdscreds.errors import ConfigError, IMDSUnreachableError, TrustPolicyError
from imdscreds.policy import RefreshPolicy
from imdscreds.refresh import RefreshingCredentials
from imdscreds.testing import FakeClock

HOUR = 3600.0
LIFETIME = 6 * HOUR
# 800 s before expiry: past any jittered advisory point (900-1200 s), far from the mandatory 60 s.
IN_ADVISORY = LIFETIME - 800.0


class StubIMDS:
    """A fetch function: issues credentials on the fake clock, hands back the same ones, or fails."""

    def __init__(self, clock: FakeClock, lifetime: float = LIFETIME) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.threads: list[str] = []
        self.error: Exception | None = None
        self.rotate = True  # False: IMDS has not rotated, every fetch returns the same credentials
        self.expired = False  # True: IMDS hands out credentials that expired an hour ago
        self.gate: threading.Event | None = None  # when set, fetches wait for it
        self.entered = threading.Event()
        self.serial = 0
        self.current: RoleCredentials | None = None

    def __call__(self) -> RoleCredentials:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test never opened the gate"
        if self.error is not None:
            raise self.error
        if self.expired:
            return self.issue(lifetime=-HOUR)
        if self.current is None or self.rotate:
            self.current = self.issue()
        return self.current

    def issue(self, lifetime: float | None = None) -> RoleCredentials:
        self.serial += 1
        life = self.lifetime if lifetime is None else lifetime
        return RoleCredentials(
            access_key_id=f"ASIASTUB{self.serial:012d}",
            secret_access_key=f"SECRET-{self.serial}-wJalrXUtnFEMI",
            token=f"TOKEN-{self.serial}-IQoJb3JpZ2luX2Vj",
            expiration=self.clock.now() + timedelta(seconds=life),
            role_name="app-role",
        )


def unreachable() -> IMDSUnreachableError:
    return IMDSUnreachableError("Could not connect to IMDS at http://127.0.0.1:9 (refused).")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def imds(clock: FakeClock) -> StubIMDS:
    return StubIMDS(clock)


def engine(
    imds: Callable[[], RoleCredentials], clock: FakeClock, seed: int = 7, **policy: Any
) -> RefreshingCredentials[RoleCredentials]:
    return RefreshingCredentials(
        imds, policy=RefreshPolicy(**policy), clock=clock, rng=random.Random(seed)
    )


def seconds_left(credentials: RoleCredentials, clock: FakeClock) -> float:
    return (credentials.expiration - clock.now()).total_seconds()


def run_threads(count: int, target: Callable[[], object]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


# -- the lock-free path --------------------------------------------------------------------------


def test_first_get_fetches_once_and_later_gets_reuse_the_snapshot(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    for _ in range(1000):
        assert creds.get() is first
    clock.advance(4 * HOUR)
    assert creds.get() is first
    assert imds.calls == 1


def test_hot_path_reads_no_wall_clock(imds: StubIMDS) -> None:
    caller = threading.current_thread()

    class CountingClock(FakeClock):
        wall_reads = 0  # by the calling thread (the clock watcher reads it in its own)

        def now(self) -> datetime:
            if threading.current_thread() is caller:
                CountingClock.wall_reads += 1
            return super().now()

    clock = CountingClock()
    imds.clock = clock
    creds = engine(imds, clock)
    creds.get()
    reads_after_fetch = CountingClock.wall_reads
    for _ in range(10_000):
        creds.get()
    assert CountingClock.wall_reads == reads_after_fetch
    # One to issue at the stub, one for the expiry, one to anchor the deadlines, per fetch.
    assert reads_after_fetch == 3


def test_view_is_built_once_per_fetch_and_handed_out_until_the_next(
    clock: FakeClock, imds: StubIMDS
) -> None:
    built: list[str] = []

    def view(credentials: RoleCredentials) -> tuple[str, str]:
        built.append(credentials.access_key_id)
        return (credentials.access_key_id, credentials.role_name)

    creds = RefreshingCredentials(imds, clock=clock, view=view, rng=random.Random(1))
    first = creds.get_view()
    assert all(creds.get_view() is first for _ in range(100))
    assert creds.get() is creds.peek()
    imds.rotate = False
    clock.advance(IN_ADVISORY)
    assert creds.get_view() is first  # IMDS handed back the same credentials: same view
    imds.rotate = True
    clock.advance(seconds_left(creds.get(), clock) - 240.0)  # past IMDS's promised rotation
    second = creds.get_view()
    assert second != first
    assert second == (creds.get().access_key_id, "app-role")
    assert built == ["ASIASTUB000000000001", "ASIASTUB000000000002"]


def test_first_fetch_failure_raises_the_fetch_error(clock: FakeClock, imds: StubIMDS) -> None:
    imds.error = TrustPolicyError(
        "EC2 cannot assume the role app-role.",
        code="AssumeRoleUnauthorizedAccess",
        imds_message=None,
    )
    creds = engine(imds, clock)
    with pytest.raises(TrustPolicyError, match="trust policy"):
        creds.get()
    imds.error = None
    clock.advance(creds.policy.first_fetch_backoff[0])  # the next caller may try again
    assert creds.get().access_key_id == "ASIASTUB000000000001"


def test_waiters_share_the_outcome_of_a_failing_first_fetch(
    clock: FakeClock, imds: StubIMDS
) -> None:
    imds.gate = threading.Event()
    imds.error = unreachable()
    creds = engine(imds, clock)
    errors: list[Exception] = []

    def call() -> None:
        try:
            creds.get()
        except IMDSUnreachableError as exc:
            errors.append(exc)

    threads = run_threads(8, call)
    assert imds.entered.wait(5)
    imds.gate.set()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 8
    assert imds.calls == 1


# -- the advisory window --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_refresh_starts_in_the_advisory_window_within_its_jitter(
    clock: FakeClock, imds: StubIMDS, seed: int
) -> None:
    creds = engine(imds, clock, seed=seed, advisory_window=900.0, advisory_jitter=300.0)
    first = creds.get()
    while creds.get() is first:
        clock.advance(1.0)
    left = seconds_left(first, clock)
    assert 900.0 - 1.0 <= left <= 1200.0
    assert imds.calls == 2


def test_refresh_without_jitter_starts_exactly_at_the_advisory_window(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock, advisory_window=600.0, advisory_jitter=0.0)
    first = creds.get()
    clock.advance(LIFETIME - 600.0 - 0.001)
    assert creds.get() is first
    clock.advance(0.001)
    assert creds.get() is not first


def test_advisory_refresh_does_not_make_other_threads_wait(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(IN_ADVISORY)
    imds.gate, imds.entered = threading.Event(), threading.Event()
    refreshed: list[RoleCredentials] = []
    refresher = run_threads(1, lambda: refreshed.append(creds.get()))[0]
    assert imds.entered.wait(5)
    # The refresh is in flight (its fetch is blocked); everyone else gets the valid credentials now.
    for _ in range(100):
        assert creds.get() is first
    imds.gate.set()
    refresher.join(5)
    assert refreshed[0] is not first
    assert creds.get() is refreshed[0]
    assert imds.calls == 2


def test_advisory_refresh_failure_keeps_serving_valid_credentials(
    clock: FakeClock, imds: StubIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="imdscreds")
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(IN_ADVISORY)
    imds.error = unreachable()
    assert creds.get() is first  # the failure is logged, not raised
    calls = imds.calls
    for _ in range(50):
        assert creds.get() is first
    assert imds.calls == calls  # and the next attempt waits for a backoff
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("Refreshing credentials failed" in r.getMessage() for r in caplog.records)
    imds.error = None
    clock.advance(10.0)  # the first backoff is at most retry_backoff[0]
    assert creds.get() is not first


# -- the mandatory window -------------------------------------------------------------------------


def test_mandatory_window_callers_wait_for_a_single_refresh(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(LIFETIME - 30.0)
    imds.gate, imds.entered = threading.Event(), threading.Event()
    results: list[RoleCredentials] = []
    threads = run_threads(32, lambda: results.append(creds.get()))
    assert imds.entered.wait(5)
    for thread in threads:
        thread.join(0.01)
    assert results == []  # everybody waits for the one refresh in flight
    imds.gate.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 32
    assert all(r is results[0] for r in results)
    assert results[0] is not first
    assert imds.calls == 2


def test_mandatory_refresh_failure_serves_valid_credentials_until_expiry(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(LIFETIME - 50.0)  # advisory attempts were missed (say, the host was suspended)
    imds.error = unreachable()
    for _ in range(49):
        assert creds.get() is first
        clock.advance(1.0)
    assert seconds_left(first, clock) == 1.0
    # Backoff, clamped so one attempt falls on the expiry itself: a handful, not one per call.
    assert 2 <= imds.calls - 1 <= 5


def test_after_a_failed_attempt_callers_do_not_wait_on_imds(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(LIFETIME - 50.0)
    imds.error = unreachable()
    assert creds.get() is first
    clock.advance(20.0)  # the next attempt is due; IMDS is slow to fail this time
    imds.gate, imds.entered = threading.Event(), threading.Event()
    attempt = run_threads(1, creds.get)[0]
    assert imds.entered.wait(5)
    for _ in range(10):
        assert creds.get() is first  # no caller waits for an attempt IMDS will likely fail again
    imds.gate.set()
    attempt.join(5)


# -- IMDS hands back the same credentials ---------------------------------------------------------


def test_same_credentials_again_waits_for_imds_promised_rotation_instead_of_polling(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    imds.rotate = False  # IMDS rotates only 5 min before expiry
    clock.advance(LIFETIME - 1200.0)
    while seconds_left(first, clock) > 300.0:
        for _ in range(10):
            assert creds.get() is first
        clock.advance(1.0)
    # 15 minutes of calls ten times a second: one look at the advisory point, then none until
    # IMDS's promise (new credentials at least 5 min before expiry), not 9,000 fetches.
    assert imds.calls - 1 == 1
    imds.rotate = True
    calls = imds.calls
    while creds.get() is first:
        clock.advance(1.0)
    # The look at the promise (plus up to 60 s of jitter) gets them, before the mandatory window.
    assert 240.0 - 1.0 <= seconds_left(first, clock) <= 300.0
    assert imds.calls == calls + 1


def test_same_credentials_inside_the_promise_back_off_until_the_mandatory_window(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    imds.rotate = False  # IMDS late, past its own promise
    clock.advance(LIFETIME - 290.0)
    while seconds_left(first, clock) > 60.0:
        assert creds.get() is first
        clock.advance(1.0)
    # 230 s of calls once a second: backoff 10 s doubling (equal jitter), not 230 fetches.
    assert 3 <= imds.calls - 1 <= 6


def test_credentials_issued_inside_the_advisory_window_are_not_refetched_on_every_call(
    clock: FakeClock, imds: StubIMDS
) -> None:
    imds.lifetime = 600.0  # shorter than the advisory window
    creds = engine(imds, clock)
    creds.get()
    for _ in range(100):
        creds.get()
    assert imds.calls == 1


# -- static stability -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_outage_past_expiry_extends_the_last_credentials_by_5_to_15_minutes(
    clock: FakeClock, imds: StubIMDS, seed: int
) -> None:
    creds = engine(imds, clock, seed=seed)
    first = creds.get()
    imds.error = unreachable()
    clock.advance(LIFETIME)
    assert creds.get() is first
    usable = creds.usable_for()
    assert usable is not None
    assert 300.0 <= usable <= 900.0
    assert creds.expires_in() == 0.0


def test_outage_serves_the_last_credentials_with_one_warning_and_bounded_polling(
    clock: FakeClock, imds: StubIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="imdscreds")
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(LIFETIME - 1200.0)
    imds.error = unreachable()
    for _ in range(int(3 * HOUR) + 1200):  # 3 hours past expiry, ten calls a simulated second
        for _ in range(10):
            assert creds.get() is first
        clock.advance(1.0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "IMDS unavailable" in message
    assert first.access_key_id in message
    assert "expired at 2026-01-01T06:00:00Z" in message
    # 3h20m of outage, backoff 10 s doubling to at most 300 s: ~45 polls, not 120,000.
    polls = imds.calls - 1
    assert 3 * HOUR / 300.0 <= polls <= 3 * HOUR / 150.0 + 20
    imds.error = None
    calls = imds.calls
    waited = 0.0
    while creds.get() is first:
        clock.advance(1.0)
        waited += 1.0
    assert waited <= 300.0  # fresh credentials within one (longest) backoff period
    assert imds.calls == calls + 1
    assert any("answering again" in r.getMessage() for r in caplog.records)


def test_a_second_outage_gets_its_own_warning(
    clock: FakeClock, imds: StubIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="imdscreds")
    creds = engine(imds, clock)
    for _ in range(2):
        creds.get()
        imds.error = unreachable()
        clock.advance(LIFETIME + 1.0)
        creds.get()
        imds.error = None
        clock.advance(300.0)
        creds.get()
    assert len(caplog.records) == 2


def test_imds_handing_out_expired_credentials_is_treated_as_an_outage(
    clock: FakeClock, imds: StubIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="imdscreds")
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(LIFETIME - 100.0)
    imds.expired = True
    for _ in range(1200):
        assert creds.get() is first  # the last good credentials, older ones are never swapped in
        clock.advance(1.0)
    assert len(caplog.records) == 1
    assert "IMDS handed out credentials that expired" in caplog.records[0].getMessage()
    assert imds.calls < 20


def test_first_fetch_of_expired_credentials_serves_them_with_a_warning(
    clock: FakeClock, imds: StubIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="imdscreds")
    imds.expired = True
    creds = engine(imds, clock)
    stale = creds.get()  # a skewed host clock must not turn credentials into an exception
    assert seconds_left(stale, clock) == -HOUR
    assert len(caplog.records) == 1
    imds.expired = False
    clock.advance(300.0)
    assert seconds_left(creds.get(), clock) == LIFETIME


# -- background prefetch --------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if condition():
            return True
        done.wait(0.005)
    return condition()


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "imdscreds-prefetch"]


def test_prefetch_thread_refreshes_before_any_caller_needs_to(
    clock: FakeClock, imds: StubIMDS
) -> None:
    with engine(imds, clock, prefetch=True) as creds:
        first = creds.get()
        clock.advance(IN_ADVISORY)
        assert wait_for(lambda: imds.calls == 2)
        assert imds.threads == ["MainThread", "imdscreds-prefetch"]
        assert creds.get() is not first
        for _ in range(3):
            clock.advance(IN_ADVISORY)
            assert wait_for(lambda: creds.refresh_due() is False and imds.calls >= 3)
            creds.get()
        assert set(imds.threads[1:]) == {"imdscreds-prefetch"}
    assert wait_for(lambda: not prefetch_threads())


def test_prefetch_retries_a_failed_refresh_in_the_background(
    clock: FakeClock, imds: StubIMDS
) -> None:
    with engine(imds, clock, prefetch=True) as creds:
        first = creds.get()
        imds.error = unreachable()
        clock.advance(IN_ADVISORY)
        assert wait_for(lambda: imds.calls == 2)
        assert creds.get() is first
        imds.error = None
        clock.advance(10.0)
        # The fetch is counted before its result is published: wait for the snapshot itself.
        assert wait_for(lambda: creds.peek() is not first)
        assert imds.calls == 3
        assert creds.get() is not first
        assert imds.threads.count("MainThread") == 1


def test_close_stops_the_prefetch_thread_and_callers_take_over(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock, prefetch=True)
    first = creds.get()
    assert wait_for(lambda: len(prefetch_threads()) == 1)
    creds.close()
    creds.close()
    assert wait_for(lambda: not prefetch_threads())
    clock.advance(IN_ADVISORY)
    assert creds.get() is not first
    assert imds.threads == ["MainThread", "MainThread"]


def test_dropping_the_engine_ends_its_prefetch_thread(clock: FakeClock, imds: StubIMDS) -> None:
    creds = engine(imds, clock, prefetch=True)
    creds.get()
    assert wait_for(lambda: len(prefetch_threads()) == 1)
    del creds
    assert wait_for(lambda: not prefetch_threads())


# -- secrets ----------------------------------------------------------------------------------


def test_no_secret_reaches_a_repr_or_a_log_line(
    clock: FakeClock, imds: StubIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="imdscreds")
    creds = engine(imds, clock)
    texts = [repr(creds)]
    creds.get()
    imds.rotate = False
    clock.advance(IN_ADVISORY)
    creds.get()
    imds.error = unreachable()
    clock.advance(1000.0)
    creds.get()
    imds.error = None
    imds.rotate = True
    clock.advance(600.0)
    creds.get()
    texts += [repr(creds), str(creds), *(r.getMessage() for r in caplog.records)]
    texts += [caplog.text]
    assert len(caplog.records) >= 4
    for text in texts:
        assert "SECRET" not in text
        assert "TOKEN" not in text


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "setting"),
    [
        ({"advisory_window": 0}, "advisory_window"),
        ({"advisory_window": 30000}, "advisory_window"),
        ({"advisory_window": float("nan")}, "advisory_window"),
        ({"advisory_window": "900"}, "advisory_window"),
        ({"advisory_window": True}, "advisory_window"),
        ({"mandatory_window": -1}, "mandatory_window"),
        ({"mandatory_window": 900}, "mandatory_window"),
        ({"advisory_window": 300, "mandatory_window": 600}, "mandatory_window"),
        ({"advisory_jitter": -0.5}, "advisory_jitter"),
        ({"advisory_jitter": 901}, "advisory_jitter"),
        ({"retry_backoff": (0.0, 10.0)}, "retry_backoff"),
        ({"retry_backoff": (60.0, 10.0)}, "retry_backoff"),
        ({"retry_backoff": 10.0}, "retry_backoff"),
        ({"retry_backoff": (10.0, 20.0, 30.0)}, "retry_backoff"),
        ({"stale_extension": (300.0, float("inf"))}, "stale_extension"),
        ({"stale_extension": (900.0, 300.0)}, "stale_extension"),
        ({"prefetch": "yes"}, "prefetch"),
    ],
)
def test_invalid_policy_is_rejected_naming_the_argument_and_the_valid_range(
    arguments: dict[str, object], setting: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RefreshPolicy(**arguments)  # type: ignore[arg-type]
    assert info.value.setting == setting
    assert info.value.source == "argument"
    assert setting in str(info.value)
    assert "expected" in str(info.value)


def test_policy_defaults_follow_the_design() -> None:
    policy = RefreshPolicy()
    assert policy.advisory_window == 900.0
    assert policy.mandatory_window == 60.0
    assert policy.stale_extension == (300.0, 900.0)
    assert policy.prefetch is False
    assert RefreshPolicy(retry_backoff=[5, 60]).retry_backoff == (5.0, 60.0)  # type: ignore[arg-type]


def test_engine_rejects_what_is_not_a_fetch_function_or_a_policy(clock: FakeClock) -> None:
    with pytest.raises(TypeError, match="fetch must be a callable"):
        RefreshingCredentials("http://127.0.0.1:9", clock=clock)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="policy must be a RefreshPolicy"):
        RefreshingCredentials(lambda: None, policy={"prefetch": True}, clock=clock)  # type: ignore[call-overload]


# -- fork -----------------------------------------------------------------------------------------

posix_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
# Python 3.12+ warns about forking a process with threads; doing so safely is what is tested here.
fork_with_threads = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)


def in_child(check: Callable[[], bool]) -> int:
    """Run ``check`` in a forked child; return its exit code (0 pass, 1 fail, 2 error, 3 hang)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 2
        try:
            code = 0 if check() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10.0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return 3
        time.sleep(0.01)


@posix_only
@fork_with_threads
def test_child_gets_credentials_although_a_parent_thread_held_the_lock_at_fork(
    clock: FakeClock, imds: StubIMDS
) -> None:
    creds = engine(imds, clock)
    first = creds.get()
    clock.advance(LIFETIME - 30.0)  # mandatory window: callers would wait on the lock
    imds.gate, imds.entered = threading.Event(), threading.Event()
    holder = run_threads(1, creds.get)[0]
    assert imds.entered.wait(5)  # a parent thread now holds the lock, stuck in its fetch

    def child() -> bool:
        imds.gate = None  # the child's own IMDS connection answers
        fresh = creds.get()
        return fresh is not first and seconds_left(fresh, clock) == LIFETIME

    assert in_child(child) == 0
    imds.gate.set()
    holder.join(5)


@posix_only
@fork_with_threads
def test_child_forgets_the_parent_prefetch_thread_and_starts_its_own(
    clock: FakeClock, imds: StubIMDS
) -> None:
    with engine(imds, clock, prefetch=True) as creds:
        first = creds.get()
        assert wait_for(lambda: len(prefetch_threads()) == 1)

        def child() -> bool:
            if prefetch_threads() or creds.get() is not first:
                return False
            clock.advance(IN_ADVISORY)
            fresh = creds.get()  # no thread to do it: the caller refreshes
            return (
                fresh is not first
                and imds.threads[-1] == "MainThread"
                and wait_for(lambda: len(prefetch_threads()) == 1)
            )

        assert in_child(child) == 0
        assert creds.get() is first  # the parent is untouched
