"""The STS and IAM checks against moto's server with IAM auth on: signatures and policies are real.

The role's credentials come from moto's STS (assumed while auth is off, as EC2 would) and are
served by FakeIMDS; the doctor's botocore clients reach moto through AWS_ENDPOINT_URL_STS and
AWS_ENDPOINT_URL_IAM.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from doctor_support import (
    ACCOUNT,
    AwsWorld,
    DoctorRun,
    ec2_trust,
    run_doctor_cli,
    secrets_of,
    self_read_policy,
)
from moto_server import MotoServer, serve_issued

from imdscreds.cli import main
from imdscreds.config import IMDSConfig
from imdscreds.doctor import run_doctor
from imdscreds.doctor.aws import default_session_factory
from imdscreds.testing import FakeIMDS

ROLE = "app-role"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    # Auth is switched per test through moto's reset-auth API (AwsWorld); start with it off.
    with MotoServer() as server:
        yield server


@pytest.fixture
def world(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AwsWorld:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", moto_server.endpoint)
    return AwsWorld(moto_server, tmp_path)


@pytest.fixture
def imds(fake_imds_factory: Callable[..., FakeIMDS], monkeypatch: pytest.MonkeyPatch) -> FakeIMDS:
    fake = fake_imds_factory(v1_allowed=False, role_name=ROLE, account_id=ACCOUNT)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake.endpoint)
    return fake


def doctor(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, *args: str, extra: list[str] | None = None
) -> DoctorRun:
    return run_doctor_cli(capsys, *args, secrets=secrets_of(imds, *(extra or [])))


def test_healthy_instance_with_a_role_policy_is_ok_with_no_warnings(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    issued = world.instance_role(ROLE, inline=self_read_policy(ROLE))
    serve_issued(imds, issued)
    world.enable_auth()
    run = doctor(capsys, imds, extra=[issued["SecretAccessKey"], issued["SessionToken"]])
    assert run.code == 0
    assert run.report["ok"] is True
    assert set(run.statuses().values()) == {"pass"}, run.statuses()
    role = run.report["role"]
    assert role["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/i-0123456789abcdef0"
    assert role["access_key_id"] == issued["AccessKeyId"]
    assert role["trust_allows_ec2"] is True
    assert role["inline_policies"] == ["app"]
    assert "lets ec2.amazonaws.com" in run.finding("trust-policy")["detail"]
    assert "STS" in run.finding("clock-skew")["summary"]


def test_credentials_sts_does_not_recognise_fail_sts_identity(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    # IMDS serves a set that moto's STS never issued: InvalidClientTokenId once auth is on.
    world.enable_auth()
    run = doctor(capsys, imds)
    assert (run.code, run.status("sts-identity")) == (1, "fail")
    assert "InvalidClientTokenId" in run.finding("sts-identity")["summary"]
    assert "replace-iam-instance-profile-association" in run.finding("sts-identity")["fix"]


def test_unreachable_sts_fails_sts_identity_with_the_vpc_endpoint_fix(
    capsys: pytest.CaptureFixture[str],
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    unreachable_endpoint: str,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", unreachable_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", unreachable_endpoint)
    run = doctor(capsys, imds)
    assert (run.code, run.status("sts-identity")) == (1, "fail")
    fix = run.finding("sts-identity")["fix"]
    assert "com.amazonaws.us-east-1.sts" in fix
    assert "aws_vpc_endpoint" in fix
    assert run.status("policies-unreadable") == "warn"


def test_role_without_policies_is_unreadable_to_itself_a_warning_not_a_verdict(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    serve_issued(imds, world.instance_role(ROLE))
    world.enable_auth()
    run = doctor(capsys, imds)
    assert run.code == 0
    assert run.status("sts-identity") == "pass"
    assert run.status("no-attached-policies") == "skip"
    finding = run.finding("policies-unreadable")
    assert finding["status"] == "warn"
    assert "is not authorized to perform: iam:ListAttachedRolePolicies" in finding["detail"]
    assert "evidence, not a verdict" in finding["detail"]
    assert f"aws iam list-attached-role-policies --role-name {ROLE}" in finding["fix"]
    assert "could not be read" in run.finding("trust-policy")["detail"]


def test_role_without_policies_read_by_an_administrator_fails_no_attached_policies(
    capsys: pytest.CaptureFixture[str],
    world: AwsWorld,
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    serve_issued(imds, world.instance_role(ROLE))
    credentials = tmp_path / "credentials"
    admin = world.admin_profile(credentials)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    world.enable_auth()
    run = doctor(capsys, imds, "--iam-profile", admin)
    assert (run.code, run.status("no-attached-policies")) == (1, "fail")
    finding = run.finding("no-attached-policies")
    assert "aws_iam_role_policy_attachment" in finding["fix"]
    assert f"aws iam attach-role-policy --role-name {ROLE}" in finding["fix"]
    assert "profile admin's credentials" in finding["detail"]
    assert run.status("policies-unreadable") == "pass"
    assert run.report["role"]["attached_policies"] == []


def test_managed_policy_read_by_an_administrator_passes(
    capsys: pytest.CaptureFixture[str],
    world: AwsWorld,
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    managed = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    serve_issued(imds, world.instance_role(ROLE, managed=managed))
    credentials = tmp_path / "credentials"
    admin = world.admin_profile(credentials)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    world.enable_auth()
    run = doctor(capsys, imds, "--iam-profile", admin)
    assert run.code == 0
    assert run.status("no-attached-policies") == "pass"
    assert f"{ROLE}-managed" in run.finding("no-attached-policies")["summary"]


def test_trust_policy_failure_read_by_an_administrator_names_the_trusted_principal(
    capsys: pytest.CaptureFixture[str],
    world: AwsWorld,
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    world.server.client("iam").create_role(
        RoleName=ROLE,
        AssumeRolePolicyDocument=json.dumps(ec2_trust("lambda.amazonaws.com")),
    )
    credentials = tmp_path / "credentials"
    admin = world.admin_profile(credentials)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    imds.scenario = "trust-policy"
    world.enable_auth()
    run = doctor(capsys, imds, "--iam-profile", admin)
    assert (run.code, run.status("trust-policy")) == (1, "fail")
    detail = run.finding("trust-policy")["detail"]
    assert "Service:lambda.amazonaws.com" in detail
    assert "does not let ec2.amazonaws.com assume the role" in detail
    assert run.report["role"]["trust_allows_ec2"] is False
    assert run.status("sts-identity") == "skip"
    # The administrator can still read the role's (missing) policies.
    assert run.status("no-attached-policies") == "fail"


def test_credentials_still_served_after_the_trust_policy_changed_warn(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    serve_issued(imds, world.instance_role(ROLE, inline=self_read_policy(ROLE)))
    world.server.client("iam").update_assume_role_policy(
        RoleName=ROLE, PolicyDocument=json.dumps(ec2_trust("lambda.amazonaws.com"))
    )
    world.enable_auth()
    run = doctor(capsys, imds)
    assert (run.code, run.status("trust-policy")) == (0, "warn")
    assert "next refresh" in run.finding("trust-policy")["detail"]


def test_unknown_iam_profile_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    assert main(["doctor", "--iam-profile", "no-such-profile"]) == 2
    assert "no-such-profile" in capsys.readouterr().err


def test_offline_and_iam_profile_together_are_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "--offline", "--iam-profile", "admin"])
    assert exit_info.value.code == 2


def test_expiring_credentials_without_renewal_warn(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    issued = world.instance_role(ROLE, inline=self_read_policy(ROLE))
    issued["Expiration"] = datetime.now(timezone.utc) + timedelta(minutes=3)
    serve_issued(imds, issued)
    world.enable_auth()
    run = doctor(capsys, imds)
    assert (run.code, run.status("credentials-expiry")) == (0, "warn")


# -- the README's examples are real runs ----------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"
_VARIABLE = [
    (re.compile(r"http://127\.0\.0\.1:\d+"), "http://127.0.0.1:PORT"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "TIMESTAMP"),
    (re.compile(r"\(in [^)]*\)"), "(in DURATION)"),
    (re.compile(r"\d+ ms\b"), "N ms"),
    (re.compile(r"\(\d+\.\d\d s"), "(N s"),
    (re.compile(r"within \d+ s\b"), "within N s"),
    (re.compile(r"ASIA[A-Z0-9]{16}"), "ASIAKEY"),
]


def normalized(text: str) -> str:
    for pattern, replacement in _VARIABLE:
        text = pattern.sub(replacement, text)
    return text.strip()


def readme_block(after: str) -> str:
    """The first ```text block after the line ``after`` in the README's doctor section."""
    section = README.read_text().split("## imdscreds doctor", 1)[1]
    rest = section.split(after, 1)[1]
    return rest.split("```text\n", 1)[1].split("```", 1)[0]


def text_run(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["doctor"])
    return code, capsys.readouterr().out


def test_readme_shows_a_real_healthy_run(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    serve_issued(imds, world.instance_role(ROLE, inline=self_read_policy(ROLE)))
    world.enable_auth()
    code, out = text_run(capsys)
    assert code == 0
    assert normalized(out) == normalized(readme_block("Output for a healthy instance"))


def test_readme_shows_a_real_trust_policy_failure(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    imds.scenario = "trust-policy"
    world.enable_auth()
    code, out = text_run(capsys)
    assert code == 1
    assert normalized(out) == normalized(readme_block("Output for the trust-policy failure"))


def test_runner_takes_its_dependencies_as_arguments(
    world: AwsWorld, imds: FakeIMDS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_issued(imds, world.instance_role(ROLE))
    credentials = tmp_path / "credentials"
    admin = world.admin_profile(credentials)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    world.enable_auth()
    asked: list[str | None] = []

    def sessions(profile: str | None) -> Any:
        asked.append(profile)
        return default_session_factory(profile)

    config = IMDSConfig.resolve(endpoint=imds.endpoint, environ={}, config_file=os.devnull)
    report = run_doctor(environ={}, imds_config=config, iam_profile=admin, session_factory=sessions)
    assert report["no-attached-policies"].status == "fail"
    assert report["sts-identity"].status == "pass"
    assert admin in asked
    assert report.instance["imds_endpoint_source"] == "argument"


def test_trust_policy_finding_shows_the_engines_verdict_for_a_trusting_role(
    capsys: pytest.CaptureFixture[str], world: AwsWorld, imds: FakeIMDS
) -> None:
    serve_issued(imds, world.instance_role(ROLE, inline=self_read_policy(ROLE)))
    world.enable_auth()
    run = doctor(capsys, imds)
    finding = run.finding("trust-policy")
    assert finding["status"] == "pass"
    assert (
        "EC2 may assume this role: statement 1 allows ec2.amazonaws.com to call sts:AssumeRole."
        in finding["detail"]
    )


def test_trust_policy_finding_says_why_a_non_trusting_role_keeps_ec2_out(
    capsys: pytest.CaptureFixture[str],
    world: AwsWorld,
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    trust = ec2_trust()
    trust["Statement"][0]["Condition"] = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    world.server.client("iam").create_role(
        RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust)
    )
    credentials = tmp_path / "credentials"
    admin = world.admin_profile(credentials)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    imds.scenario = "trust-policy"
    world.enable_auth()
    run = doctor(capsys, imds, "--iam-profile", admin)
    finding = run.finding("trust-policy")
    assert (run.code, finding["status"]) == (1, "fail")
    # The naive reading (Service and Action match) would say EC2 gets in; the engine says why not.
    assert "does not let ec2.amazonaws.com assume the role" in finding["detail"]
    assert "Bool aws:MultiFactorAuthPresent: EC2's request cannot meet it" in finding["detail"]
    assert run.report["role"]["trust_allows_ec2"] is False
