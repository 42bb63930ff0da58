"""The asyncio examples, run as their users run them: subprocesses against FakeIMDS and moto's STS
and S3 (signatures and the role's policy checked)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("aiobotocore", reason="the aio extra is absent")

from moto_server import MotoServer, serve_issued
from test_examples import (
    CREDENTIALS_PATH,
    INSTANCE_ID,
    ROLE_SESSION_ARN,
    assert_no_secret,
    instance,
    run,
)

from imdscreds.testing import FakeIMDS

__all__ = ["instance"]  # the fixture, shared with the sync examples' tests

BUCKET = "app-data"
KEY = "reports/today.csv"
CONTENT = "day,requests\n2026-01-01,42\n"


@pytest.fixture
def s3_instance(fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIMDS]:
    """An instance role allowed to read one bucket, served by FakeIMDS; moto checks every request
    after the five setup actions (create and assume the role, its policy, the bucket, the object)."""
    with MotoServer(no_auth_actions=5) as moto:
        issued = moto.assume_instance_role("app-role", INSTANCE_ID)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{BUCKET}/*",
                }
            ],
        }
        moto.client("iam").put_role_policy(
            RoleName="app-role", PolicyName="read", PolicyDocument=json.dumps(policy)
        )
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=CONTENT.encode())
        fake_imds.role_name = "app-role"
        serve_issued(fake_imds, issued["Credentials"])
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield fake_imds


def test_aiobotocore_client_calls_sts_as_the_instance_role(instance: FakeIMDS) -> None:
    result = run("aiobotocore_client.py")
    assert result.code == 0, result.err
    assert f"arn: {ROLE_SESSION_ARN}" in result.out
    assert "credentials: iam-role" in result.out
    assert instance.count(CREDENTIALS_PATH) == 1
    assert_no_secret(result, instance)


def test_aiobotocore_client_without_imds_says_there_are_no_credentials() -> None:
    result = run("aiobotocore_client.py", "--offline")
    assert result.code == 1
    assert "No credentials found" in result.err


def test_aiobotocore_client_with_a_broken_trust_policy_says_what_to_fix(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_imds.scenario = "trust-policy"
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    result = run("aiobotocore_client.py", "--offline")
    assert result.code == 1
    assert "ec2.amazonaws.com" in result.err


def test_aioboto3_resource_reads_an_object_as_the_instance_role(s3_instance: FakeIMDS) -> None:
    pytest.importorskip("aioboto3")
    result = run("aioboto3_resource.py", BUCKET, KEY)
    assert result.code == 0, result.err
    assert result.out == f"s3://{BUCKET}/{KEY}: {len(CONTENT)} bytes\n{CONTENT}"
    assert_no_secret(result, s3_instance)


def test_aioboto3_resource_is_refused_what_the_role_may_not_read(s3_instance: FakeIMDS) -> None:
    pytest.importorskip("aioboto3")
    result = run("aioboto3_resource.py", BUCKET + "-other", KEY)
    assert result.code == 1
    assert "AccessDenied" in result.err


def test_s3fs_reads_an_object_as_the_instance_role(s3_instance: FakeIMDS) -> None:
    pytest.importorskip("s3fs")
    result = run("s3fs_read.py", f"s3://{BUCKET}/{KEY}")
    assert result.code == 0, result.err
    assert result.out == f"s3://{BUCKET}/{KEY}: {len(CONTENT)} bytes\n{CONTENT}"
    assert_no_secret(result, s3_instance)
