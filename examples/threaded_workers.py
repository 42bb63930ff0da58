"""A pool of threads sharing one boto3 client whose credentials come from imdscreds.

    python examples/threaded_workers.py --threads 16 --calls 10
    python examples/threaded_workers.py --offline   # sign nothing, just read credentials

boto3 clients are thread-safe; sessions are not, so the session is made once, up front. Every
request's signature reads the credentials: with imdscreds that read is lock-free, and however many
threads ask while a refresh is due, IMDS is asked once.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

import imdscreds


def work(client: Any, credentials: Any, calls: int, offline: bool) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(calls):
        if offline:
            seen[credentials.get_frozen_credentials().access_key] += 1
        else:
            seen[client.get_caller_identity()["Arn"]] += 1
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=5, help="calls per thread")
    parser.add_argument("--offline", action="store_true", help="do not call AWS")
    args = parser.parse_args(argv)
    try:
        session = imdscreds.boto3_session()
        credentials = session.get_credentials()
        if credentials is None:
            print(
                "No credentials found: not on EC2 with an instance role? Run `imdscreds doctor`.",
                file=sys.stderr,
            )
            return 1
        client = session.client("sts")
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            futures = [
                pool.submit(work, client, credentials, args.calls, args.offline)
                for _ in range(args.threads)
            ]
            totals: Counter[str] = Counter()
            for future in futures:
                totals.update(future.result())
    except imdscreds.IMDSCredsError as exc:
        print(f"imdscreds: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"AWS: {exc}", file=sys.stderr)
        return 1
    what = "access key" if args.offline else "identity"
    for name, count in sorted(totals.items()):
        print(f"{count} calls from {args.threads} threads as {what} {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
