"""Read an S3 object through an aioboto3 resource, as the instance role, with imdscreds' credentials.

    python examples/aioboto3_resource.py BUCKET KEY

``imdscreds.aio.install()`` takes an aioboto3 ``Session`` as well as an aiobotocore one; every
client and resource the session makes then signs with the instance role's credentials, refreshed
ahead of expiry in a thread of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aioboto3
from botocore.exceptions import BotoCoreError, ClientError

import imdscreds
import imdscreds.aio


async def read(bucket: str, key: str) -> bytes:
    session = aioboto3.Session()
    imdscreds.aio.install(session)
    async with session.resource("s3") as s3:
        obj = await s3.Object(bucket, key)
        answer = await obj.get()
        async with answer["Body"] as body:
            data: bytes = await body.read()
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bucket")
    parser.add_argument("key")
    args = parser.parse_args(argv)
    try:
        data = asyncio.run(read(args.bucket, args.key))
    except imdscreds.IMDSCredsError as exc:  # a misconfigured role: the message says what to fix
        print(f"imdscreds: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"AWS: {exc}", file=sys.stderr)
        return 1
    print(f"s3://{args.bucket}/{args.key}: {len(data)} bytes")
    print(data.decode("utf-8", errors="replace"), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
