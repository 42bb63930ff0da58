"""``imdscreds serve`` and ``imdscreds exec`` as real processes, with plain botocore clients.

Every process inherits the suite's environment: ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` points at a
closed loopback port, so only the broker (given ``--endpoint``, a FakeIMDS) ever reaches an IMDS.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.utils import ContainerMetadataFetcher

from imdscreds.testing import FakeIMDS

CLIENTS = str(Path(__file__).with_name("broker_clients.py"))
IMDSCREDS = [sys.executable, "-m", "imdscreds"]


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_32_plain_botocore_processes_under_exec_cost_imds_at_most_3_requests(
    fake_imds: FakeIMDS,
) -> None:
    done = subprocess.run(
        [
            *IMDSCREDS,
            "exec",
            "--endpoint",
            fake_imds.endpoint,
            "--",
            sys.executable,
            CLIENTS,
            "launch",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = _lines(done.stdout)
    assert len(answers) == 32
    assert all("error" not in answer for answer in answers), answers
    assert {answer["method"] for answer in answers} == {"container-role"}
    assert {answer["access_key"] for answer in answers} == {
        fake_imds.current_credentials.access_key_id
    }
    assert fake_imds.count() <= 3  # without the broker: 96
    assert fake_imds.current_credentials.secret_access_key not in done.stderr


def test_exec_exits_with_the_childs_status_and_forwards_signals(fake_imds: FakeIMDS) -> None:
    done = subprocess.run(
        [
            *IMDSCREDS,
            "exec",
            "--endpoint",
            fake_imds.endpoint,
            sys.executable,
            "-c",
            "raise SystemExit(7)",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 7
    script = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), sys.exit(3)))\n"
        "print(os.environ['AWS_CONTAINER_CREDENTIALS_FULL_URI'], flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [*IMDSCREDS, "exec", "--endpoint", fake_imds.endpoint, "--", sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=30)
    assert "got TERM" in rest
    assert process.returncode == 3
    # The broker is gone with the child.
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_exec_of_a_missing_command_is_one_line_and_127(fake_imds: FakeIMDS) -> None:
    done = subprocess.run(
        [*IMDSCREDS, "exec", "--endpoint", fake_imds.endpoint, "--", "no-such-command-here"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 127
    assert (
        done.stderr.strip() == "imdscreds: error: no-such-command-here: command not found on PATH"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(fake_imds: FakeIMDS, port: int, token_file: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            *IMDSCREDS,
            "serve",
            "--endpoint",
            fake_imds.endpoint,
            "--port",
            str(port),
            "--token-file",
            str(token_file),
            "--print-env",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    env = dict(process.stdout.readline().strip().split("=", 1) for _ in range(2))
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == f"http://127.0.0.1:{port}/credentials"
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(token_file)
    return process


def _botocore_fetch(port: int, token_file: Path) -> dict[str, Any]:
    """What botocore's ContainerProvider does on each refresh: re-read the file, GET the URL."""
    response: dict[str, Any] = ContainerMetadataFetcher().retrieve_full_uri(
        f"http://127.0.0.1:{port}/credentials", headers={"Authorization": token_file.read_text()}
    )
    return response


def test_serve_killed_and_restarted_on_the_same_port_and_token_file_clients_recover(
    fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    run.chmod(0o700)
    token_file, port = run / "token", _free_port()
    first = _serve(fake_imds, port, token_file)
    try:
        before = _botocore_fetch(port, token_file)
        first.kill()  # SIGKILL: no clean-up, the token file stays behind
        first.wait(10)
        assert token_file.exists()
        second = _serve(fake_imds, port, token_file)
    finally:
        first.kill()
        first.communicate()
    try:
        after = _botocore_fetch(port, token_file)  # the new token, read from the same file
        assert after["AccessKeyId"] == before["AccessKeyId"]
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    finally:
        second.kill()
    assert second.returncode == 0
    assert not token_file.exists()  # SIGTERM removes it
    # One INFO line per refresh; nothing secret in the log.
    assert err.count("Fetched credentials from IMDS") == 1
    for secret in (after["SecretAccessKey"], after["Token"]):
        assert secret not in err


def test_exec_killed_with_sigkill_leaves_its_children_without_a_broker(
    fake_imds: FakeIMDS,
) -> None:
    # exec's broker lives in exec's process: SIGKILL takes it down and no one restarts it (the
    # child then gets SIGTERM, its parent-death signal: tests/test_broker_host.py).
    script = (
        "import os, sys, time\n"
        "print(os.environ['AWS_CONTAINER_CREDENTIALS_FULL_URI'], flush=True)\n"
        "print(os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'], flush=True)\n"
        "sys.stdin.readline()\n"
    )
    process = subprocess.Popen(
        [*IMDSCREDS, "exec", "--endpoint", fake_imds.endpoint, "--", sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    url, token_path = process.stdout.readline().strip(), process.stdout.readline().strip()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert _botocore_fetch(port, Path(token_path))["AccessKeyId"]
    process.kill()
    process.wait(10)
    try:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing serves the child now
        assert Path(token_path).exists()  # and the private token directory is left behind
    finally:
        process.stdin.close()  # the orphaned child reads EOF and ends
        process.stdout.close()
        if _alive_group(process.pid):
            os.killpg(process.pid, signal.SIGTERM)
        Path(token_path).unlink(missing_ok=True)
        Path(token_path).parent.rmdir()


def _alive_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_library_under_exec_reads_the_broker_through_its_own_engine(fake_imds: FakeIMDS) -> None:
    script = (
        "import imdscreds\n"
        "session = imdscreds.boto3_session(region_name='us-east-1')\n"
        "credentials = session.get_credentials()\n"
        "print(type(credentials).__name__, credentials.method, credentials.access_key)\n"
        "print(credentials.engine.expires_in() > 3600)\n"
    )
    done = subprocess.run(
        [*IMDSCREDS, "exec", "--endpoint", fake_imds.endpoint, "--", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    key = fake_imds.current_credentials.access_key_id
    assert first == f"IMDSRefreshableCredentials container-role {key}"
    assert second == "True"


def test_aws_cli_under_exec_one_imds_fetch_for_many_runs(fake_imds: FakeIMDS) -> None:
    from moto_server import MotoServer, serve_issued

    venv = os.environ.get("IMDSCREDS_AWSCLI_VENV")
    if not venv:
        why = "IMDSCREDS_AWSCLI_VENV names no venv with the AWS CLI (.ci/run builds one)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    aws = str(Path(venv) / "bin" / "aws")
    with MotoServer(no_auth_actions=2) as moto:
        issued = moto.assume_instance_role("broker-role", "i-0123456789abcdef0")
        serve_issued(fake_imds, issued["Credentials"])
        fake_imds.reset_counts()
        runs = 4
        loop = "; ".join([f"{aws} sts get-caller-identity --output json"] * runs)
        env = dict(os.environ, AWS_ENDPOINT_URL_STS=moto.endpoint, AWS_DEFAULT_REGION="us-east-1")
        done = subprocess.run(
            [*IMDSCREDS, "exec", "--endpoint", fake_imds.endpoint, "--", "sh", "-c", loop],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            env=env,
        )
    assert done.returncode == 0, done.stderr
    arns = [json.loads(part)["Arn"] for part in done.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert arns == [issued["AssumedRoleUser"]["Arn"]] * runs
    creds = "/latest/meta-data/iam/security-credentials-extended/imdscreds-demo-role"
    assert fake_imds.count(creds) == 1
    assert issued["Credentials"]["SecretAccessKey"] not in done.stderr


def test_serve_on_port_0_prints_where_it_listens_and_sigint_ends_it_cleanly(
    fake_imds: FakeIMDS,
) -> None:
    process = subprocess.Popen(
        [*IMDSCREDS, "serve", "--endpoint", fake_imds.endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("imdscreds: serving on http://127.0.0.1:")
    url, token_path = line.removeprefix("imdscreds: serving on ").split(", token in ")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert port > 0
    assert _botocore_fetch(port, Path(token_path))["AccessKeyId"]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Traceback" not in err
    assert not Path(token_path).exists()
    assert not Path(token_path).parent.exists()


def test_a_broker_without_credentials_shows_botocore_users_the_cause_and_the_fix(
    fake_imds: FakeIMDS,
) -> None:
    fake_imds.scenario = "no-profile"
    done = subprocess.run(
        [
            *IMDSCREDS,
            "exec",
            "--endpoint",
            fake_imds.endpoint,
            "--",
            sys.executable,
            CLIENTS,
            "once",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    (answer,) = _lines(done.stdout)
    assert answer["error"].startswith("CredentialRetrievalError")
    assert "NoInstanceProfileError" in answer["error"]
    assert "Attach an instance profile" in answer["error"]


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(fake_imds: FakeIMDS) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [*IMDSCREDS, "serve", "--endpoint", fake_imds.endpoint, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"imdscreds: error: Cannot listen on 127.0.0.1 port {port}")
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
