"""The pytest plugin imdscreds installs (entry point ``pytest11``): fixtures, nothing autouse.

- ``imdscreds_fake_imds``: a started ``FakeIMDS`` on the real clock (healthy; switch ``.scenario``
  in the test), stopped after the test.
- ``imdscreds_fake_imds_factory``: ``make(**kwargs)`` builds and starts a ``FakeIMDS`` with any
  constructor arguments (a ``FakeClock``, a scenario ...); every one made is stopped after the test.
- ``imdscreds_fake_clock``: a fresh ``FakeClock``.

The names carry the ``imdscreds_`` prefix so that they cannot collide with another plugin's
``fake_clock``. The short names ``fake_imds``, ``fake_imds_factory`` and ``fake_clock`` stay as
aliases; a project whose own fixture has one of those names overrides the alias alone.

The fake IMDS fixture uses the real clock on purpose: the credentials it serves must look
current to code that reads the real time. Pass a ``FakeClock`` through the factory when the test
drives time itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imdscreds.testing.clock import FakeClock
from imdscreds.testing.fake_imds import FakeIMDS

__all__ = [
    "fake_clock",
    "fake_imds",
    "fake_imds_factory",
    "imdscreds_fake_clock",
    "imdscreds_fake_imds",
    "imdscreds_fake_imds_factory",
]


def _stop_and_check(imds: FakeIMDS) -> None:
    imds.stop()
    if imds.errors:
        pytest.fail("FakeIMDS failed internally:\n" + "\n".join(imds.errors), pytrace=False)


@pytest.fixture
def imdscreds_fake_clock() -> FakeClock:
    """A ``FakeClock`` at 2026-01-01T00:00:00Z, monotonic 1000.0."""
    return FakeClock()


@pytest.fixture
def imdscreds_fake_imds() -> Iterator[FakeIMDS]:
    """A running, healthy ``FakeIMDS`` on 127.0.0.1 and the real clock."""
    imds = FakeIMDS().start()
    try:
        yield imds
    finally:
        _stop_and_check(imds)


@pytest.fixture
def imdscreds_fake_imds_factory() -> Iterator[Callable[..., FakeIMDS]]:
    """``make(**kwargs) -> FakeIMDS``: started now, stopped after the test."""
    made: list[FakeIMDS] = []

    def make(**kwargs: Any) -> FakeIMDS:
        imds = FakeIMDS(**kwargs).start()
        made.append(imds)
        return imds

    try:
        yield make
    finally:
        for imds in reversed(made):
            imds.stop()
        errors = [error for imds in made for error in imds.errors]
        if errors:
            pytest.fail("FakeIMDS failed internally:\n" + "\n".join(errors), pytrace=False)


# The short names, kept for the suites that use them.


@pytest.fixture
def fake_clock(imdscreds_fake_clock: FakeClock) -> FakeClock:
    """Alias of ``imdscreds_fake_clock``."""
    return imdscreds_fake_clock


@pytest.fixture
def fake_imds(imdscreds_fake_imds: FakeIMDS) -> FakeIMDS:
    """Alias of ``imdscreds_fake_imds``."""
    return imdscreds_fake_imds


@pytest.fixture
def fake_imds_factory(
    imdscreds_fake_imds_factory: Callable[..., FakeIMDS],
) -> Callable[..., FakeIMDS]:
    """Alias of ``imdscreds_fake_imds_factory``."""
    return imdscreds_fake_imds_factory
