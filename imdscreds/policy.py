"""``RefreshPolicy``: when the refresh engine refreshes, backs off, and serves expired credentials.

Checked when built: a bad value is a ``ConfigError`` naming the setting and the valid range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imdscreds.errors import ConfigError

__all__ = ["DEFAULT_POLICY", "RefreshPolicy"]

# IMDS issues role credentials for at most 6 hours; a longer window would refresh on every attempt.
_MAX_LIFETIME = 21600.0


def _invalid(setting: str, value: object, valid: str) -> ConfigError:
    return ConfigError(
        f"`{value!r}` is not a valid {setting} (from argument); {valid}.",
        setting=setting,
        source="argument",
        hint=f"Pass a valid {setting} to RefreshPolicy.",
    )


def _seconds(setting: str, value: object, low: float, high: float, valid: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise _invalid(setting, value, valid)
    return float(value)


def _seconds_range(setting: str, value: object, low: float, high: float) -> tuple[float, float]:
    valid = f"expected (shortest, longest) seconds with {low:g} <= shortest <= longest <= {high:g}"
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise _invalid(setting, value, valid)
    shortest = _seconds(setting, value[0], low, high, valid)
    longest = _seconds(setting, value[1], shortest, high, valid)
    return shortest, longest


@dataclass(frozen=True, kw_only=True)
class RefreshPolicy:
    """When to refresh, how to back off, how long to serve expired credentials; checked when built.

    All values are seconds.
    """

    advisory_window: float = 900.0
    """Refresh this long before expiry, without making anyone wait (0 < x <= 21600)."""
    mandatory_window: float = 60.0
    """This close to expiry callers wait for the refresh (0 <= x < advisory_window)."""
    advisory_jitter: float = 300.0
    """Start the advisory window up to this much earlier, at random (0 <= x <= advisory_window)."""
    retry_backoff: tuple[float, float] = (10.0, 300.0)
    """First and longest wait between attempts that brought no new credentials (1 .. 3600)."""
    stale_extension: tuple[float, float] = (300.0, 900.0)
    """Shortest and longest extension of expired credentials while IMDS is down (1 .. 3600)."""
    first_fetch_backoff: tuple[float, float] = (1.0, 30.0)
    """First and longest wait between attempts while there never were credentials (0.01 .. 3600):
    callers in between get the last attempt's error at once."""
    prefetch: bool = False
    """Refresh in a daemon thread, so that no caller ever waits after the first fetch."""

    def __post_init__(self) -> None:
        advisory = _seconds(
            "advisory_window",
            self.advisory_window,
            math.ulp(0.0),
            _MAX_LIFETIME,
            f"expected seconds above 0 and at most {_MAX_LIFETIME:g} (IMDS credentials live 6 h)",
        )
        mandatory = _seconds(
            "mandatory_window",
            self.mandatory_window,
            0.0,
            _MAX_LIFETIME,
            "expected seconds from 0 up to, not including, advisory_window",
        )
        if mandatory >= advisory:
            raise _invalid(
                "mandatory_window",
                self.mandatory_window,
                f"expected seconds from 0 up to, not including, advisory_window ({advisory:g})",
            )
        jitter = _seconds(
            "advisory_jitter",
            self.advisory_jitter,
            0.0,
            advisory,
            f"expected seconds from 0 to advisory_window ({advisory:g})",
        )
        if not isinstance(self.prefetch, bool):
            raise _invalid("prefetch", self.prefetch, "expected True or False")
        object.__setattr__(self, "advisory_window", advisory)
        object.__setattr__(self, "mandatory_window", mandatory)
        object.__setattr__(self, "advisory_jitter", jitter)
        backoff = _seconds_range("retry_backoff", self.retry_backoff, 1.0, 3600.0)
        object.__setattr__(self, "retry_backoff", backoff)
        stale = _seconds_range("stale_extension", self.stale_extension, 1.0, 3600.0)
        object.__setattr__(self, "stale_extension", stale)
        first = _seconds_range("first_fetch_backoff", self.first_fetch_backoff, 0.01, 3600.0)
        object.__setattr__(self, "first_fetch_backoff", first)


DEFAULT_POLICY = RefreshPolicy()
