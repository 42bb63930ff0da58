"""The ``imdscreds`` command in-process (``main(argv)``) and once as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from imdscreds.cli import main
from imdscreds.testing import FakeIMDS


class Terminal(io.StringIO):
    """Standard output as a person's terminal."""

    def isatty(self) -> bool:
        return True


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_credential_process_format_is_what_the_aws_cli_reads(
    fake_imds: FakeIMDS, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["credentials", "--endpoint", fake_imds.endpoint], capsys)
    assert code == 0, err
    document = json.loads(out)
    served = fake_imds.current_credentials
    assert document == {
        "Version": 1,
        "AccessKeyId": served.access_key_id,
        "SecretAccessKey": served.secret_access_key,
        "SessionToken": served.token,
        "Expiration": served.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert err == ""


def test_env_format_is_shell_exports(
    fake_imds: FakeIMDS, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["credentials", "--format", "env", "--endpoint", fake_imds.endpoint], capsys)
    assert code == 0
    names = [line.split("=", 1)[0] for line in out.splitlines()]
    assert names == [
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_SESSION_TOKEN",
        "export AWS_CREDENTIAL_EXPIRATION",
    ]


def test_json_format_adds_role_and_account(
    fake_imds: FakeIMDS, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        ["credentials", "--format", "json", "--endpoint", fake_imds.endpoint], capsys
    )
    assert code == 0
    document = json.loads(out)
    assert document["RoleName"] == fake_imds.role_name
    assert document["AccountId"] == fake_imds.account_id


def test_secrets_are_masked_on_a_terminal_unless_revealed(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = fake_imds.current_credentials
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["credentials", "--endpoint", fake_imds.endpoint]) == 0
    shown = terminal.getvalue()
    assert served.secret_access_key not in shown
    assert served.token not in shown
    assert served.access_key_id in shown
    assert "masked" in capsys.readouterr().err

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["credentials", "--reveal", "--endpoint", fake_imds.endpoint]) == 0
    assert served.secret_access_key in terminal.getvalue()


def test_no_credentials_is_exit_1_with_one_line_naming_cause_and_fix(
    fake_imds: FakeIMDS, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_imds.scenario = "no-profile"
    code, out, err = run(["credentials", "--endpoint", fake_imds.endpoint], capsys)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("imdscreds: error: No instance profile is attached")
    assert "associate-iam-instance-profile" in err
    assert "Traceback" not in err


def test_off_ec2_is_exit_1_and_fast(capsys: pytest.CaptureFixture[str]) -> None:
    # The autouse fixture points the endpoint at a closed loopback port: like a host with no IMDS.
    code, _, err = run(["credentials"], capsys)
    assert code == 1
    assert "No instance metadata service at http://127.0.0.1:" in err
    assert "env AWS_EC2_METADATA_SERVICE_ENDPOINT" in err


def test_bad_configuration_is_exit_2_naming_value_and_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv7")
    code, _, err = run(["credentials"], capsys)
    assert code == 2
    assert "`IPv7` is not a valid endpoint mode" in err
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE" in err
    assert "Traceback" not in err


def test_bad_argument_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["credentials", "--timeout", "soon"], capsys)
    assert code == 2
    assert "`soon`" in err
    with pytest.raises(SystemExit) as caught:
        main(["credentials", "--format", "yaml"])
    assert caught.value.code == 2


def test_demo_shows_three_then_one_request_and_no_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["demo"], capsys)
    assert code == 0
    assert "Cold fetch: 3 requests" in out
    assert "Second fetch: 1 request" in out
    start = out.index("{")
    document = json.loads(out[start : out.rindex("}") + 1])
    assert document["SecretAccessKey"].startswith("<hidden")
    assert document["SessionToken"].startswith("<hidden")
    assert document["AccessKeyId"].startswith("ASIA")


def test_module_entry_point_runs_as_a_subprocess(fake_imds: FakeIMDS) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imdscreds", "credentials", "--endpoint", fake_imds.endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AccessKeyId"] == fake_imds.current_credentials.access_key_id


def test_fake_imds_command_serves_until_stopped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "imdscreds", "fake-imds", "--scenario", "healthy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        endpoint = first.rsplit(" ", 1)[1].strip()
        result = subprocess.run(
            [sys.executable, "-m", "imdscreds", "credentials", "--endpoint", endpoint],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_fake_imds_command_rejects_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["fake-imds", "--scenario", "nope"], capsys)
    assert code == 2
    assert "healthy" in err


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    # `imdscreds demo | head -1`: the reader goes away; no BrokenPipeError traceback.
    process = subprocess.Popen(
        [sys.executable, "-m", "imdscreds", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) in (0, 141)
    assert "Traceback" not in stderr
