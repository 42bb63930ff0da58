"""A boto3 script on EC2 whose instance-role credentials come from imdscreds.

    python examples/boto3_script.py            # asks STS who we are (sts:GetCallerIdentity)
    python examples/boto3_script.py --offline  # only shows which credentials boto3 would sign with

``imdscreds.boto3_session()`` is ``boto3.Session()`` with imdscreds in place of botocore's own
instance-metadata provider: env vars, ~/.aws files and container credentials still come first.
Off EC2, point it at the fake IMDS (``--offline``: the fake's keys mean nothing to real STS):

    imdscreds fake-imds --port 8111 &
    AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:8111 python examples/boto3_script.py --offline
"""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import BotoCoreError, ClientError

import imdscreds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        frozen = credentials.get_frozen_credentials()  # what the signer uses; never print secrets
        print(f"credentials: {credentials.method}, access key {frozen.access_key}")
        if args.offline:
            return 0
        identity = session.client("sts").get_caller_identity()
    except imdscreds.IMDSCredsError as exc:  # a misconfigured role: the message says what to fix
        print(f"imdscreds: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"AWS: {exc}", file=sys.stderr)
        return 1
    print(f"account: {identity['Account']}")
    print(f"arn: {identity['Arn']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
