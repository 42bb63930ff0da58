from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from imdscreds.clock import Clock
from imdscreds.testing import FakeClock

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_starts_at_new_year_2026_utc_and_monotonic_1000() -> None:
    clock: Clock = FakeClock()

    assert clock.now() == START
    assert clock.now().tzinfo is timezone.utc
    assert clock.monotonic() == 1_000.0


def test_start_in_another_zone_is_reported_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))

    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=plus_two), monotonic_start=5.0)

    assert clock.now() == datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
    assert clock.now().tzinfo is timezone.utc
    assert clock.monotonic() == 5.0


def test_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))


def test_advance_moves_wall_and_monotonic_time_together() -> None:
    clock = FakeClock()

    clock.advance(90.5)

    assert clock.now() == START + timedelta(seconds=90.5)
    assert clock.monotonic() == 1_090.5


def test_advance_backwards_is_rejected() -> None:
    clock = FakeClock()

    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    assert clock.monotonic() == 1_000.0


def test_sleep_advances_without_waiting_and_is_recorded() -> None:
    clock = FakeClock()
    began = time.monotonic()

    clock.sleep(6 * 3600)
    clock.sleep(0.25)

    assert time.monotonic() - began < 1.0
    assert clock.now() == START + timedelta(hours=6, seconds=0.25)
    assert clock.sleeps == [6 * 3600, 0.25]


def test_zero_or_negative_sleep_does_not_move_the_clock() -> None:
    clock = FakeClock()

    clock.sleep(0)
    clock.sleep(-3)

    assert clock.monotonic() == 1_000.0
    assert clock.sleeps == [0, -3]


def test_set_moves_forward_to_an_instant() -> None:
    clock = FakeClock()

    clock.set(START + timedelta(hours=2))

    assert clock.now() == START + timedelta(hours=2)
    assert clock.monotonic() == 1_000.0 + 7_200


def test_set_backwards_or_naive_is_rejected() -> None:
    clock = FakeClock()
    clock.advance(60)

    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(START)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2027, 1, 1))


def test_concurrent_advances_are_not_lost() -> None:
    clock = FakeClock()

    def tick() -> None:
        for _ in range(1_000):
            clock.advance(1)

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert clock.monotonic() == 1_000.0 + 8_000
    assert clock.now() == START + timedelta(seconds=8_000)


def test_repr_shows_both_times() -> None:
    assert repr(FakeClock()) == "FakeClock(now=2026-01-01T00:00:00+00:00, monotonic=1000)"


def test_plugin_fake_clock_fixture_is_a_fresh_fake_clock(fake_clock: FakeClock) -> None:
    assert isinstance(fake_clock, FakeClock)
    assert fake_clock.now() == START
