"""The examples, run as their users run them: subprocesses against FakeIMDS (and moto's STS)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto_server import MotoServer, serve_issued

from imdscreds.testing import FakeIMDS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INSTANCE_ID = "i-0123456789abcdef0"
ROLE_SESSION_ARN = f"arn:aws:sts::123456789012:assumed-role/app-role/{INSTANCE_ID}"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials-extended/app-role"


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(example: str, *args: str, env: dict[str, str] | None = None) -> Run:
    completed = subprocess.run(  # the test's interpreter, a script of this repository
        [sys.executable, str(EXAMPLES / example), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def instance(fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIMDS]:
    """FakeIMDS serving an instance role that moto's STS issued; both found through the env."""
    with MotoServer(no_auth_actions=2) as moto:
        issued = moto.assume_instance_role("app-role", INSTANCE_ID)
        assert issued["AssumedRoleUser"]["Arn"] == ROLE_SESSION_ARN
        fake_imds.role_name = "app-role"
        serve_issued(fake_imds, issued["Credentials"])
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield fake_imds


def assert_no_secret(result: Run, imds: FakeIMDS) -> None:
    for credentials in imds.issued_credentials:
        for text in (result.out, result.err):
            assert credentials.secret_access_key not in text
            assert credentials.token not in text


def test_boto3_script_calls_sts_as_the_instance_role(instance: FakeIMDS) -> None:
    result = run("boto3_script.py")
    assert result.code == 0, result.err
    assert f"arn: {ROLE_SESSION_ARN}" in result.out
    assert "credentials: iam-role" in result.out
    assert_no_secret(result, instance)


def test_boto3_script_offline_against_the_fake_imds(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    result = run("boto3_script.py", "--offline")
    assert result.code == 0, result.err
    key = fake_imds.current_credentials.access_key_id
    assert result.out == f"credentials: iam-role, access key {key}\n"
    assert_no_secret(result, fake_imds)


def test_boto3_script_without_imds_says_there_are_no_credentials() -> None:
    # The suite's environment points IMDS at a closed loopback port: nothing answers.
    result = run("boto3_script.py")
    assert result.code == 1
    assert "No credentials found" in result.err


def test_boto3_script_with_a_broken_trust_policy_says_what_to_fix(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_imds.scenario = "trust-policy"
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    result = run("boto3_script.py", "--offline")
    assert result.code == 1
    assert "ec2.amazonaws.com" in result.err


def test_threaded_workers_share_one_credentials_fetch(instance: FakeIMDS) -> None:
    result = run("threaded_workers.py", "--threads", "8", "--calls", "3")
    assert result.code == 0, result.err
    assert result.out == f"24 calls from 8 threads as identity {ROLE_SESSION_ARN}\n"
    assert instance.count(CREDENTIALS_PATH) == 1
    assert_no_secret(result, instance)


posix_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")


@posix_only
def test_prefork_workers_create_their_sessions_after_the_fork(instance: FakeIMDS) -> None:
    result = run("prefork_app.py", "--workers", "3", "--requests", "2")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[-1] == "3 of 3 workers succeeded"
    assert (
        sorted(line.split(": ", 1)[1] for line in lines[:-1])
        == [f"2 requests as {ROLE_SESSION_ARN}"] * 3
    )
    assert instance.count(CREDENTIALS_PATH) == 3  # one per worker
    assert_no_secret(result, instance)


@posix_only
def test_prefork_workers_inherit_credentials_loaded_before_the_fork(instance: FakeIMDS) -> None:
    result = run("prefork_app.py", "--workers", "3", "--requests", "2", "--preload")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "3 of 3 workers succeeded"
    assert result.out.count(ROLE_SESSION_ARN) == 3
    assert instance.count(CREDENTIALS_PATH) == 1  # loaded once, in the parent


@posix_only
def test_prefork_offline_against_the_fake_imds(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    result = run("prefork_app.py", "--workers", "2", "--offline")
    assert result.code == 0, result.err
    assert result.out.count(fake_imds.current_credentials.access_key_id) == 2
