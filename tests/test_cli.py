"""The ``imdscreds`` command in-process (``main(argv)``) and once as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import requests
from cli_support import fetch_with_imdscreds, serve_in_process

from imdscreds import IMDSClient, IMDSConfig, RoleCredentials, RoleCredentialsFetcher
from imdscreds.cli import main
from imdscreds.testing import SCENARIO_DESCRIPTIONS, FakeIMDS


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


def test_fake_imds_command_serves_and_on_sigterm_prints_its_requests_and_summary() -> None:
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
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    role = "/latest/meta-data/iam/security-credentials-extended/"
    assert err.splitlines() == [
        "fake-imds: PUT /latest/api/token -> 200 (no token)",
        f"fake-imds: GET {role} -> 200 (token)",
        f"fake-imds: GET {role}imdscreds-demo-role -> 200 (token)",
        "fake-imds: stopped after 3 requests",
        "  1  PUT /latest/api/token",
        f"  1  GET {role}",
        f"  1  GET {role}imdscreds-demo-role",
    ]
    assert json.loads(result.stdout)["SessionToken"] not in err


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


# -- argument handling ---------------------------------------------------------------------------


def test_an_unknown_option_shows_the_usage_of_the_command_it_was_given_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["credentials", "--bogus"])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.startswith("usage: imdscreds credentials ")
    assert "--format" in err
    assert err.rstrip().endswith("imdscreds credentials: error: unrecognized arguments: --bogus")


def test_demo_json_without_a_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["demo", "--json"])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert "imdscreds demo: error: --json needs --scenario NAME" in err


def test_verbose_credentials_say_what_was_fetched_without_secrets(
    fake_imds: FakeIMDS, capsys: pytest.CaptureFixture[str]
) -> None:
    served = fake_imds.current_credentials
    code, out, err = run(["-vv", "credentials", "--endpoint", fake_imds.endpoint], capsys)
    assert code == 0
    assert json.loads(out)["AccessKeyId"] == served.access_key_id
    lines = err.splitlines()
    assert (
        f"imdscreds: DEBUG: IMDS at {fake_imds.endpoint} (argument), 1 s per attempt (default), "
        "3 attempts (default), role discovered."
    ) in lines
    assert (
        f"imdscreds: INFO: Fetched credentials for the role {fake_imds.role_name} (account "
        f"{fake_imds.account_id}) from the extended credentials endpoint: access key "
        f"{served.access_key_id}, valid until {served.expiration.strftime('%Y-%m-%dT%H:%M:%SZ')}."
    ) in lines
    assert served.secret_access_key not in err
    assert served.token not in err


def test_one_v_says_the_fetch_and_no_v_says_nothing(
    fake_imds: FakeIMDS, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, err = run(["-v", "credentials", "--endpoint", fake_imds.endpoint], capsys)
    assert "imdscreds: INFO: Fetched credentials for the role" in err
    assert "DEBUG" not in err
    _, _, err = run(["credentials", "--endpoint", fake_imds.endpoint], capsys)
    assert err == ""


# -- fake-imds -----------------------------------------------------------------------------------


def test_fake_imds_help_describes_it_and_lists_every_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["fake-imds", "--help"])
    out = capsys.readouterr().out
    assert caught.value.code == 0
    assert "Run a fake EC2 instance metadata service on loopback" in out
    for option in ("--v1", "--validity", "--rotation", "--host", "--json-log", "--duration"):
        assert option in out
    scenarios = out.split("\nscenarios:\n", 1)[1]
    for name, description in SCENARIO_DESCRIPTIONS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(description)}$", scenarios, re.M)


def test_fake_imds_scenario_list_prints_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["fake-imds", "--scenario", "list"], capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == list(SCENARIO_DESCRIPTIONS)


def test_fake_imds_on_a_busy_port_is_one_line_naming_port_and_cause(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out, err = run(["fake-imds", "--port", str(port)], capsys)
    assert code == 1
    assert out == ""
    assert err == (
        f"imdscreds: error: the fake IMDS cannot listen on 127.0.0.1:{port}: the address is "
        "already in use (another process listens on that port); choose another port, or port 0 "
        "for any free one\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "99999"], "argument --port: '99999' is not a TCP port: 0..65535"),
        (["--port", "http"], "argument --port: 'http' is not a TCP port"),
        (["--validity", "0"], "argument --validity: '0' is not a positive number of seconds"),
        (["--rotation", "soon"], "argument --rotation: 'soon' is not a positive number"),
        (["--v1", "maybe"], "argument --v1: invalid choice: 'maybe'"),
    ],
)
def test_fake_imds_bad_settings_name_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["fake-imds", *argv])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert message in err
    assert "--scenario" not in err.split("error:", 1)[1]


def test_fake_imds_logs_each_request_and_a_count_per_path_when_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = serve_in_process([], fetch_with_imdscreds, capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("fake IMDS (healthy) listening on http://127.0.0.1:")
    assert err.splitlines() == [
        "fake-imds: PUT /latest/api/token -> 200 (no token)",
        "fake-imds: GET /latest/meta-data/iam/security-credentials-extended/ -> 200 (token)",
        "fake-imds: GET /latest/meta-data/iam/security-credentials-extended/imdscreds-demo-role "
        "-> 200 (token)",
        "fake-imds: stopped after 3 requests",
        "  1  PUT /latest/api/token",
        "  1  GET /latest/meta-data/iam/security-credentials-extended/",
        "  1  GET /latest/meta-data/iam/security-credentials-extended/imdscreds-demo-role",
    ]


def test_fake_imds_json_log_is_one_object_a_line_and_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def token_less_get(endpoint: str) -> None:
        with requests.Session() as http:
            http.trust_env = False
            http.get(endpoint + "/latest/meta-data/instance-id", timeout=5)

    code, _, err = serve_in_process(["--json-log"], token_less_get, capsys)
    assert code == 0
    request, summary = (json.loads(line) for line in err.splitlines())
    assert set(request) == {"time", "method", "path", "status", "action", "token"}
    assert (request["method"], request["path"], request["status"], request["token"]) == (
        "GET",
        "/latest/meta-data/instance-id",
        200,
        False,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", request["time"])
    assert summary == {
        "summary": [{"method": "GET", "path": "/latest/meta-data/instance-id", "count": 1}],
        "total": 1,
    }


def test_fake_imds_v1_required_refuses_token_less_gets(capsys: pytest.CaptureFixture[str]) -> None:
    statuses: list[int] = []

    def token_less_get(endpoint: str) -> None:
        with requests.Session() as http:
            http.trust_env = False
            statuses.append(http.get(endpoint + "/latest/meta-data/", timeout=5).status_code)

    code, _, err = serve_in_process(["--v1", "required", "--quiet"], token_less_get, capsys)
    assert code == 0
    assert statuses == [401]
    assert err.splitlines()[0] == "fake-imds: stopped after 1 request"


def test_fake_imds_sets_validity_and_rotation(capsys: pytest.CaptureFixture[str]) -> None:
    fetched: list[RoleCredentials] = []

    def fetch_twice(endpoint: str) -> None:
        config = IMDSConfig.resolve(endpoint=endpoint, environ={})
        with IMDSClient(config) as client:
            fetcher = RoleCredentialsFetcher(client)
            fetched.append(fetcher.fetch())
            time.sleep(1.2)
            fetched.append(fetcher.fetch())

    code, _, _ = serve_in_process(
        ["--validity", "600", "--rotation", "1", "--quiet"], fetch_twice, capsys
    )
    assert code == 0
    first, second = fetched
    assert first.last_updated is not None
    assert (first.expiration - first.last_updated).total_seconds() == 600
    assert second.access_key_id != first.access_key_id


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 here")
def test_fake_imds_listens_on_ipv6_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    code, out, _ = serve_in_process(["--host", "::1", "--quiet"], fetch_with_imdscreds, capsys)
    assert code == 0
    assert "listening on http://[::1]:" in out
    assert "export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://[::1]:" in out
