"""A pre-fork server in the style of gunicorn: a parent forks workers, each makes AWS calls.

    python examples/prefork_app.py --workers 4            # sessions created in each worker
    python examples/prefork_app.py --workers 4 --preload  # one session created before the fork
    python examples/prefork_app.py --offline              # read credentials, call nothing

Creating sessions in each worker after the fork (gunicorn's default) is the simple, safe pattern.
``--preload`` (gunicorn's ``preload_app``) loads credentials in the parent and the workers inherit
them: imdscreds resets its locks and connections in each child, so a fork in the middle of a refresh
cannot deadlock a worker, and each worker refreshes on its own from then on. POSIX only (os.fork).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

import imdscreds


def serve(session: Any, requests: int, offline: bool) -> int:
    """One worker's life: a few 'requests', each needing AWS. Returns an exit code."""
    try:
        session = session if session is not None else imdscreds.boto3_session()
        credentials = session.get_credentials()
        if credentials is None:
            print(f"worker {os.getpid()}: no credentials", file=sys.stderr, flush=True)
            return 1
        client = None if offline else session.client("sts")
        who = "nobody"
        for _ in range(requests):
            if client is None:
                who = f"access key {credentials.get_frozen_credentials().access_key}"
            else:
                who = client.get_caller_identity()["Arn"]
        print(f"worker {os.getpid()}: {requests} requests as {who}", flush=True)
        return 0
    except (imdscreds.IMDSCredsError, BotoCoreError, ClientError) as exc:
        print(f"worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3, help="requests per worker")
    parser.add_argument("--preload", action="store_true", help="load credentials before forking")
    parser.add_argument("--offline", action="store_true", help="do not call AWS")
    args = parser.parse_args(argv)
    if not hasattr(os, "fork"):
        print("os.fork is not available on this platform.", file=sys.stderr)
        return 2
    session = None
    if args.preload:
        session = imdscreds.boto3_session()
        session.get_credentials()  # the first IMDS fetch happens here, in the parent
    sys.stdout.flush()  # or every worker would write the parent's buffered output again
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            os._exit(serve(session, args.requests, args.offline))
        children.append(pid)
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    print(f"{args.workers - failed} of {args.workers} workers succeeded")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
