"""Test helpers for code that uses imdscreds: a fake IMDS on loopback, a fake clock, a network guard.

``FakeIMDS`` is a real HTTP server on 127.0.0.1 that plays the instance metadata service, healthy
or broken in one of the ways named in ``SCENARIOS``; ``FakeClock`` drives its rotation and token
expiry (and the code under test) through simulated time; ``block_non_loopback`` makes sure nothing
reaches the real IMDS or any other host. Installing imdscreds registers a pytest plugin with the
fixtures ``imdscreds_fake_imds``, ``imdscreds_fake_imds_factory`` and ``imdscreds_fake_clock``
(also under the short names ``fake_imds``, ``fake_imds_factory`` and ``fake_clock``).
"""

from __future__ import annotations

from imdscreds.testing.clock import FakeClock
from imdscreds.testing.fake_imds import (
    SCENARIO_DESCRIPTIONS,
    SCENARIOS,
    FakeIMDS,
    FakeIMDSBindError,
    RequestRecord,
)
from imdscreds.testing.guard import NonLoopbackConnectionError, block_non_loopback

__all__ = [
    "SCENARIOS",
    "SCENARIO_DESCRIPTIONS",
    "FakeClock",
    "FakeIMDS",
    "FakeIMDSBindError",
    "NonLoopbackConnectionError",
    "RequestRecord",
    "block_non_loopback",
]
