"""End to end: moto's STS issues the role's credentials, FakeIMDS serves them, boto3 signs with them.

moto checks SigV4 signatures after its first few actions, so a call that succeeds here was signed
with the credentials imdscreds handed to botocore.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto_server import MotoServer, serve_issued

import imdscreds.provider
from imdscreds.testing import FakeIMDS

ACCOUNT = "123456789012"
INSTANCE_ID = "i-0123456789abcdef0"
# The actions of the account fixture, all inside moto's no-auth window; auth is on for everything after.
SETUP_ACTIONS = 7


@dataclass
class Account:
    role_session_arn: str
    deployer_arn: str
    user_arn: str
    user_key: dict[str, Any]


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with MotoServer(no_auth_actions=SETUP_ACTIONS) as server:
        yield server


@pytest.fixture
def account(moto: MotoServer, fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch) -> Account:
    """An instance role issued by moto's STS and served by FakeIMDS; an IAM user with keys."""
    issued = moto.assume_instance_role("app-role", INSTANCE_ID)
    instance_session = issued["AssumedRoleUser"]["Arn"]
    iam = moto.client("iam")
    policy = iam.create_policy(
        PolicyName="assume-deployer",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
            }
        ),
    )
    iam.attach_role_policy(RoleName="app-role", PolicyArn=policy["Policy"]["Arn"])
    # A role session principal: the instance's session may assume the deployer role. (moto matches
    # the trust policy's principal to the caller's session ARN literally.)
    deployer = iam.create_role(
        RoleName="deployer",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": instance_session},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    user = iam.create_user(UserName="ci")
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    fake_imds.role_name = "app-role"
    serve_issued(fake_imds, issued["Credentials"])
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return Account(
        role_session_arn=instance_session,
        deployer_arn=deployer["Role"]["Arn"],
        user_arn=user["User"]["Arn"],
        user_key=key,
    )


def test_boto3_session_calls_sts_as_the_instance_role(
    account: Account, fake_imds: FakeIMDS
) -> None:
    session = imdscreds.provider.boto3_session()
    identity = session.client("sts").get_caller_identity()
    assert identity["Arn"] == account.role_session_arn
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/app-role/{INSTANCE_ID}"
    assert identity["Account"] == ACCOUNT
    assert session.get_credentials().method == "iam-role"
    assert fake_imds.count("/latest/meta-data/iam/security-credentials-extended/app-role") == 1


def test_environment_keys_win_over_the_instance_role(
    account: Account, fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", account.user_key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", account.user_key["SecretAccessKey"])
    session = imdscreds.provider.boto3_session()
    identity = session.client("sts").get_caller_identity()
    assert identity["Arn"] == account.user_arn
    assert fake_imds.count() == 0


def test_credential_source_profile_assumes_its_role_with_the_instance_role(
    account: Account, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile deploy]\n"
        f"role_arn = {account.deployer_arn}\n"
        "role_session_name = release\n"
        "credential_source = Ec2InstanceMetadata\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    session = imdscreds.provider.boto3_session(profile_name="deploy")
    identity = session.client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/release"
