"""Read an S3 object with s3fs (what pandas and fsspec use for ``s3://`` paths) as the instance role.

    python examples/s3fs_read.py s3://BUCKET/KEY

s3fs runs aiobotocore on an event loop in a thread of its own; handed an ``AioSession`` that
imdscreds was installed in, it signs with the instance role's credentials, and their refreshes
never hold up that loop.
"""

from __future__ import annotations

import argparse
import sys

import s3fs
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

import imdscreds
import imdscreds.aio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="s3://BUCKET/KEY")
    args = parser.parse_args(argv)
    session = AioSession()
    imdscreds.aio.install(session)
    fs = s3fs.S3FileSystem(session=session)
    try:
        with fs.open(args.url, "rb") as f:
            data = f.read()
    except imdscreds.IMDSCredsError as exc:  # a misconfigured role: the message says what to fix
        print(f"imdscreds: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError, OSError) as exc:
        print(f"AWS: {exc}", file=sys.stderr)
        return 1
    print(f"{args.url}: {len(data)} bytes")
    print(data.decode("utf-8", errors="replace"), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
