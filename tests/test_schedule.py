"""The refresh schedule on its own: plain numbers in, deadlines out (no clock, no thread, no fetch).

Times are monotonic seconds; the credentials below expire at 21600 (6 h, as IMDS hands them out).
``Draw(f)`` stands in for the random source: every jitter lands at fraction ``f`` of its range.
"""

from __future__ import annotations

import ast
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from imdscreds.policy import RefreshPolicy
from imdscreds.refresh import schedule

EXPIRES = 21600.0
POLICY = RefreshPolicy()  # advisory 900 + jitter 300, mandatory 60, backoff (10, 300)
MANDATORY = EXPIRES - 60.0


class Draw:
    """Every ``uniform(a, b)`` returns ``a + f * (b - a)``; the ranges asked for are kept."""

    def __init__(self, f: float) -> None:
        self.f = f
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float, /) -> float:
        self.asked.append((a, b))
        return a + self.f * (b - a)


# -- backoff ---------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_first_wait_up_to_the_longest() -> None:
    ceilings = [schedule.backoff(n, (10.0, 300.0), Draw(1.0)) for n in range(1, 8)]
    assert ceilings == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]


def test_backoff_is_at_least_half_its_ceiling() -> None:
    assert schedule.backoff(1, (10.0, 300.0), Draw(0.0)) == 5.0
    assert schedule.backoff(9, (10.0, 300.0), Draw(0.0)) == 150.0
    assert schedule.backoff(3, (10.0, 300.0), Draw(0.5)) == 30.0


def test_backoff_after_a_million_failures_stays_at_the_cap() -> None:
    # The exponent is bounded, so a long outage never overflows a float.
    assert schedule.backoff(10**6, (1.0, 30.0), Draw(1.0)) == 30.0


def test_backoff_draws_its_jitter_from_the_upper_half_of_the_ceiling() -> None:
    rng = Draw(0.25)
    schedule.backoff(2, (10.0, 300.0), rng)
    assert rng.asked == [(0.0, 10.0)]


# -- a fresh set: the advisory point -----------------------------------------------------------


@pytest.mark.parametrize(("f", "attempt_at"), [(0.0, 20700.0), (0.5, 20550.0), (1.0, 20400.0)])
def test_fresh_credentials_refresh_in_the_advisory_window_minus_up_to_the_jitter(
    f: float, attempt_at: float
) -> None:
    assert schedule.fresh_deadlines(0.0, EXPIRES, POLICY, Draw(f)) == (attempt_at, MANDATORY)


def test_fresh_deadlines_stay_within_the_jitter_for_any_draw() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        attempt_at, _mandatory = schedule.fresh_deadlines(0.0, EXPIRES, POLICY, rng)
        assert EXPIRES - 900.0 - 300.0 <= attempt_at <= EXPIRES - 900.0


def test_an_advisory_point_one_instant_ahead_is_kept() -> None:
    assert schedule.fresh_deadlines(20699.5, EXPIRES, POLICY, Draw(0.0))[0] == 20700.0


def test_an_advisory_point_already_reached_backs_off_instead_of_refreshing_at_once() -> None:
    # Issued with exactly the advisory window left: look again after a backoff (5..10 s).
    assert schedule.fresh_deadlines(20700.0, EXPIRES, POLICY, Draw(0.0))[0] == 20705.0
    assert schedule.fresh_deadlines(0.0, 600.0, POLICY, Draw(1.0)) == (10.0, 540.0)


def test_a_short_lived_set_is_looked_at_again_no_later_than_its_mandatory_window() -> None:
    assert schedule.fresh_deadlines(0.0, 64.0, POLICY, Draw(1.0)) == (4.0, 4.0)


# -- the next attempt after one that brought nothing new ---------------------------------------


def test_a_backoff_never_skips_the_start_of_the_mandatory_window() -> None:
    at = schedule.next_attempt(
        21530.0, 5, POLICY, Draw(1.0), mandatory_at=MANDATORY, expires_at=EXPIRES
    )
    assert at == MANDATORY


def test_from_the_mandatory_window_on_a_backoff_never_skips_the_expiry() -> None:
    for now in (MANDATORY, 21550.0):
        at = schedule.next_attempt(
            now, 5, POLICY, Draw(1.0), mandatory_at=MANDATORY, expires_at=EXPIRES
        )
        assert at == EXPIRES


def test_after_the_expiry_a_backoff_runs_its_full_length() -> None:
    at = schedule.next_attempt(
        EXPIRES, 5, POLICY, Draw(1.0), mandatory_at=MANDATORY, expires_at=EXPIRES
    )
    assert at == EXPIRES + 160.0


def test_a_backoff_that_ends_before_the_mandatory_window_is_kept() -> None:
    at = schedule.next_attempt(
        0.0, 2, POLICY, Draw(0.0), mandatory_at=MANDATORY, expires_at=EXPIRES
    )
    assert at == 10.0


# -- the same set again ------------------------------------------------------------------------


@pytest.mark.parametrize(("f", "attempt_at"), [(0.0, 21300.0), (1.0, 21360.0)])
def test_the_same_set_early_is_asked_for_again_at_the_jittered_rotation_promise(
    f: float, attempt_at: float
) -> None:
    assert schedule.same_again_deadlines(0.0, EXPIRES, 1, POLICY, Draw(f)) == (
        attempt_at,
        MANDATORY,
    )


def test_the_same_set_from_the_rotation_promise_on_is_asked_for_after_a_backoff() -> None:
    promised_at = EXPIRES - schedule.IMDS_ROTATION_PROMISE
    rng = Draw(0.0)
    assert schedule.same_again_deadlines(promised_at, EXPIRES, 1, POLICY, rng)[0] == 21305.0
    assert len(rng.asked) == 1  # the backoff's draw only: no promise jitter


def test_the_rotation_promise_never_postpones_past_the_mandatory_window() -> None:
    policy = RefreshPolicy(mandatory_window=400.0)
    assert schedule.same_again_deadlines(0.0, EXPIRES, 1, policy, Draw(1.0)) == (21200.0, 21200.0)


def test_a_backoff_longer_than_the_wait_for_the_promise_wins() -> None:
    # 21200 s in: the promise is 100 s away (160 s with the jitter drawn at its top), the
    # backoff after 9 attempts 300 s.
    assert schedule.same_again_deadlines(21200.0, EXPIRES, 9, POLICY, Draw(1.0))[0] == 21500.0


# -- static stability: extensions ------------------------------------------------------------------


@pytest.mark.parametrize(("f", "until", "attempt_at"), [(0.0, 300.0, 5.0), (1.0, 900.0, 10.0)])
def test_an_expired_set_is_extended_by_five_to_fifteen_minutes(
    f: float, until: float, attempt_at: float
) -> None:
    now = EXPIRES + 100.0
    assert schedule.extension(now, -math.inf, 1, POLICY, Draw(f)) == (
        now + attempt_at,
        now + until,
    )


def test_within_an_extension_its_end_is_kept_and_nothing_new_is_drawn_for_it() -> None:
    rng = Draw(0.0)
    assert schedule.extension(22100.0, 22500.0, 1, POLICY, rng) == (22105.0, 22500.0)
    assert rng.asked == [(0.0, 5.0)]  # the backoff's draw only


def test_at_the_end_of_an_extension_a_new_one_begins() -> None:
    assert schedule.extension(22500.0, 22500.0, 1, POLICY, Draw(0.0)) == (22505.0, 22800.0)


def test_the_next_attempt_never_falls_after_the_extension_ends() -> None:
    assert schedule.extension(22400.0, 22500.0, 9, POLICY, Draw(1.0)) == (22500.0, 22500.0)


# -- where callers leave the lock-free path -----------------------------------------------------


def caller_deadline(
    attempt_at: float, *, now: float, prefetching: bool, usable_until: float = EXPIRES
) -> float:
    return schedule.caller_deadline(
        attempt_at,
        mandatory_at=MANDATORY,
        expires_at=EXPIRES,
        usable_until=usable_until,
        now=now,
        prefetching=prefetching,
    )


def test_without_a_prefetch_thread_callers_step_in_at_the_attempt() -> None:
    assert caller_deadline(20700.0, now=0.0, prefetching=False) == 20700.0
    assert caller_deadline(EXPIRES + 10.0, now=EXPIRES, prefetching=False) == EXPIRES + 10.0


def test_with_a_prefetch_thread_callers_step_in_only_at_the_mandatory_window() -> None:
    assert caller_deadline(20700.0, now=0.0, prefetching=True) == MANDATORY


def test_with_a_prefetch_thread_and_expired_credentials_callers_step_in_at_the_extensions_end() -> (
    None
):
    for now in (EXPIRES, EXPIRES + 50.0):
        deadline = caller_deadline(
            now + 10.0, now=now, prefetching=True, usable_until=EXPIRES + 600.0
        )
        assert deadline == EXPIRES + 600.0


# -- a set's life: two clocks and the 12 h cap -------------------------------------------------


T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_life_is_measured_by_the_local_clock_without_a_server_date() -> None:
    assert schedule.life_left(T + timedelta(hours=6), T, None) == 21600.0


def test_a_server_clock_ahead_of_ours_shortens_the_life() -> None:
    assert schedule.life_left(T + timedelta(hours=6), T, T + timedelta(hours=1)) == 18000.0


def test_a_server_date_far_in_the_past_does_not_lengthen_the_life() -> None:
    assert schedule.life_left(T + timedelta(hours=6), T, T - timedelta(days=1)) == 21600.0


def test_an_expired_set_has_negative_life() -> None:
    assert schedule.life_left(T - timedelta(minutes=1), T, None) == -60.0


@pytest.mark.parametrize("hours", [12, 20, 24 * 365])
def test_no_set_lives_longer_than_twelve_hours(hours: int) -> None:
    expiration = T + timedelta(hours=hours)
    assert schedule.life_left(expiration, T, T - timedelta(days=1)) == schedule.LONGEST_LIFE
    assert schedule.LONGEST_LIFE == 12 * 3600


def test_just_under_twelve_hours_is_not_capped() -> None:
    assert schedule.life_left(T + timedelta(hours=12) - timedelta(seconds=1), T, None) == 43199.0


def test_the_schedule_reads_no_clock_and_starts_no_thread() -> None:
    tree = ast.parse(Path(schedule.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name if isinstance(node, ast.Import) else f"{node.module}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert "imdscreds.policy" in imported  # the walk found the imports
    assert not imported & {"time", "threading", "random", "imdscreds.clock", "asyncio"}
