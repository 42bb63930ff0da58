"""Helpers for the doctor's tests: run ``imdscreds doctor`` in-process, and a real AWS on loopback.

``run_doctor_cli`` calls ``cli.main(["doctor", "--json", ...])`` and checks what every report must
hold (every id, once, in order; no secret anywhere; exit code matching ``ok``). ``AwsWorld`` wraps
moto's server (``tests/moto_server.py``) for one test: moto's state wiped, IAM auth off while the
test builds roles and users, then on (``enable_auth``) so that signatures and policies are checked
for real while the doctor runs. moto has one auth switch per process, so these tests run one at
a time against a server of their own module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from moto_server import MotoServer

from imdscreds.cli import main
from imdscreds.doctor import CHECK_IDS
from imdscreds.testing import FakeIMDS

__all__ = [
    "ACCOUNT",
    "AwsWorld",
    "DoctorRun",
    "ec2_trust",
    "run_doctor_cli",
    "secrets_of",
    "self_read_policy",
]

ACCOUNT = "123456789012"


def ec2_trust(service: str = "ec2.amazonaws.com") -> dict[str, Any]:
    """A trust policy that lets ``service`` assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def self_read_policy(role_name: str) -> dict[str, Any]:
    """What a healthy least-privilege role might hold, plus reading its own IAM entry."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["iam:GetRole", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies"],
                "Resource": f"arn:aws:iam::{ACCOUNT}:role/{role_name}",
            },
        ],
    }


def secrets_of(imds: FakeIMDS, *extra: str) -> list[str]:
    """Every secret key and session token the fake has served, and ``extra`` ones."""
    found = [c.secret_access_key for c in imds.issued_credentials]
    found += [c.token for c in imds.issued_credentials]
    return [*found, *extra]


@dataclass
class DoctorRun:
    """One ``imdscreds doctor --json`` run: exit code, the parsed report, stderr."""

    code: int
    report: dict[str, Any]
    stderr: str

    def finding(self, check_id: str) -> dict[str, Any]:
        return next(f for f in self.report["findings"] if f["id"] == check_id)

    def status(self, check_id: str) -> str:
        return str(self.finding(check_id)["status"])

    def statuses(self) -> dict[str, str]:
        return {f["id"]: f["status"] for f in self.report["findings"]}


def run_doctor_cli(
    capsys: pytest.CaptureFixture[str], *args: str, secrets: list[str] | None = None
) -> DoctorRun:
    """``imdscreds doctor --json ARGS`` in-process, with the checks every report must pass."""
    code = main(["doctor", "--json", *args])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert [f["id"] for f in report["findings"]] == list(CHECK_IDS)
    assert code == (0 if report["ok"] else 1)
    assert report["ok"] == all(f["status"] != "fail" for f in report["findings"])
    for secret in secrets or []:
        assert secret not in out
        assert secret not in err
    return DoctorRun(code, report, err)


class AwsWorld:
    """moto's STS and IAM for one test: build roles with auth off, then check with auth on."""

    def __init__(self, server: MotoServer, home: Path) -> None:
        self.server = server
        self.home = home
        self._auth(on=False)
        response = requests.post(f"{server.endpoint}/moto-api/reset", timeout=10)
        response.raise_for_status()

    def _auth(self, *, on: bool) -> None:
        # moto's switch: the number of actions let through unchecked from now on.
        response = requests.post(
            f"{self.server.endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf", timeout=10
        )
        response.raise_for_status()

    def enable_auth(self) -> None:
        """From here on moto verifies SigV4 and evaluates IAM policies."""
        self._auth(on=True)

    def instance_role(
        self,
        role_name: str,
        *,
        inline: dict[str, Any] | None = None,
        managed: dict[str, Any] | None = None,
        trust: dict[str, Any] | None = None,
        session_name: str = "i-0123456789abcdef0",
    ) -> dict[str, Any]:
        """Create the role (with these policies) and assume it as EC2 would: STS's Credentials."""
        iam = self.server.client("iam")
        arn = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust or ec2_trust())
        )["Role"]["Arn"]
        if inline is not None:
            iam.put_role_policy(
                RoleName=role_name, PolicyName="app", PolicyDocument=json.dumps(inline)
            )
        if managed is not None:
            policy = iam.create_policy(
                PolicyName=f"{role_name}-managed", PolicyDocument=json.dumps(managed)
            )
            iam.attach_role_policy(RoleName=role_name, PolicyArn=policy["Policy"]["Arn"])
        answer = self.server.client("sts").assume_role(RoleArn=arn, RoleSessionName=session_name)
        credentials: dict[str, Any] = answer["Credentials"]
        return credentials

    def admin_profile(self, credentials_file: Path, name: str = "admin") -> str:
        """An IAM user allowed everything, as profile ``name`` in ``credentials_file``."""
        iam = self.server.client("iam")
        iam.create_user(UserName=name)
        everything = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(everything))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        with credentials_file.open("a") as file:
            file.write(
                f"[{name}]\naws_access_key_id = {key['AccessKeyId']}\n"
                f"aws_secret_access_key = {key['SecretAccessKey']}\n"
            )
        return name
