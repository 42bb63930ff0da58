"""Per-call cost of ``get_frozen_credentials()``: imdscreds against botocore's own, same run.

Run ``python benchmarks/hot_path.py``. Both objects hold credentials that expire far in the future,
so every call is the steady state a boto3 client sees on each request: botocore's
``RefreshableCredentials`` with its default time fetcher (``datetime.now(tzlocal())``), and
imdscreds' credentials on the system clock. Neither touches the network: the imdscreds engine is fed
by a local function, which the hot path never calls after the first fetch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.credentials import RefreshableCredentials  # type: ignore[import-untyped]

from imdscreds.credentials import RoleCredentials
from imdscreds.provider import IMDSRefreshableCredentials

FAR_FUTURE = timedelta(days=3650)


def botocore_credentials() -> RefreshableCredentials:
    def refresh() -> dict[str, str]:  # never called: the expiry is years away
        raise AssertionError("botocore refreshed during the benchmark")

    return RefreshableCredentials(
        access_key="ASIABENCHMARK0000001",
        secret_key="benchmark-secret",
        token="benchmark-token",
        expiry_time=datetime.now(timezone.utc) + FAR_FUTURE,
        refresh_using=refresh,
        method="iam-role",
    )


def imdscreds_credentials() -> IMDSRefreshableCredentials:
    def fetch() -> RoleCredentials:
        return RoleCredentials(
            access_key_id="ASIABENCHMARK0000001",
            secret_access_key="benchmark-secret",
            token="benchmark-token",
            expiration=datetime.now(timezone.utc) + FAR_FUTURE,
            role_name="benchmark",
        )

    return IMDSRefreshableCredentials(fetch)


def ns_per_call(credentials: Any, calls: int, repeats: int) -> float:
    """Median over ``repeats`` batches of ``calls`` calls, in nanoseconds per call.

    The loop looks the method up on every call, as botocore's signer does.
    """
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            credentials.get_frozen_credentials()
        samples.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(samples)


class _Empty:
    """For scale: the cost of the loop and an empty method call."""

    def get_frozen_credentials(self) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per batch")
    parser.add_argument("--repeats", type=int, default=25, help="batches; the median is reported")
    args = parser.parse_args(argv)

    theirs = botocore_credentials()
    ours = imdscreds_credentials()
    assert (
        theirs.get_frozen_credentials()
        == ours.get_frozen_credentials()[: len(theirs.get_frozen_credentials())]
    )
    ns_per_call(theirs, 1000, 3)  # warm-up
    ns_per_call(ours, 1000, 3)
    botocore_ns = ns_per_call(theirs, args.calls, args.repeats)
    imdscreds_ns = ns_per_call(ours, args.calls, args.repeats)
    baseline_ns = ns_per_call(_Empty(), args.calls, args.repeats)

    print(
        f"Python {sys.version.split()[0]}, {args.repeats} x {args.calls:,} calls, median per call"
    )
    print()
    print("| get_frozen_credentials() | ns per call | vs botocore |")
    print("|---|---:|---:|")
    print(f"| botocore RefreshableCredentials | {botocore_ns:,.0f} | 1.0x |")
    print(f"| imdscreds | {imdscreds_ns:,.0f} | {botocore_ns / imdscreds_ns:.1f}x faster |")
    print(f"| (an empty method call, for scale) | {baseline_ns:,.0f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
