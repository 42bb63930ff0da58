"""An asyncio program on EC2 whose aiobotocore clients sign with imdscreds' instance-role credentials.

    python examples/aiobotocore_client.py            # asks STS who we are (sts:GetCallerIdentity)
    python examples/aiobotocore_client.py --offline  # only shows which credentials it would sign with

``imdscreds.aio.install(session)`` puts imdscreds in place of aiobotocore's own instance-metadata
provider: env vars, ~/.aws files and container credentials still come first. The credentials read
on every request is a lock-free snapshot; a refresh runs in a thread, never on the event loop.
Off EC2, point it at the fake IMDS (``--offline``: the fake's keys mean nothing to real STS):

    imdscreds fake-imds --port 8111 &
    AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:8111 python examples/aiobotocore_client.py --offline
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

import imdscreds
import imdscreds.aio


async def run(offline: bool) -> int:
    session = AioSession()
    imdscreds.aio.install(session)
    credentials = await session.get_credentials()
    if credentials is None:
        print(
            "No credentials found: not on EC2 with an instance role? Run `imdscreds doctor`.",
            file=sys.stderr,
        )
        return 1
    frozen = await credentials.get_frozen_credentials()  # what the signer uses; never print secrets
    print(f"credentials: {credentials.method}, access key {frozen.access_key}")
    if offline:
        return 0
    async with session.create_client("sts") as sts:
        identity = await sts.get_caller_identity()
    print(f"account: {identity['Account']}")
    print(f"arn: {identity['Arn']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline", action="store_true", help="do not call AWS")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.offline))
    except imdscreds.IMDSCredsError as exc:  # a misconfigured role: the message says what to fix
        print(f"imdscreds: {exc}", file=sys.stderr)
    except (BotoCoreError, ClientError) as exc:
        print(f"AWS: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
