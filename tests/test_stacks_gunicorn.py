"""gunicorn for real: each worker model serves botocore requests signed with imdscreds' credentials.

gunicorn runs as a subprocess on 127.0.0.1 (port 0), its IMDS a FakeIMDS, its STS moto's server
with signature checks on. The test serves a new set of moto-issued credentials every 2 s, each
living 5 s, while client threads send requests for a bounded time; the app refreshes 2.5 s before
expiry, so every worker goes through several rotations. Each ``/sts`` request is a signed
GetCallerIdentity, and the ARN moto answers must be the role session the served key belongs to.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from moto_server import MotoServer
from stack_apps.support import HERE, assert_nothing_left_loopback, stack_env

from imdscreds.testing import FakeIMDS

pytest.importorskip("gunicorn")

ROTATION = 2.0
VALIDITY = 5.0
LOAD_SECONDS = 5.0
SETS = 4
ROLE = "stack-role"


@pytest.fixture(scope="module")
def moto_sets() -> Iterator[tuple[MotoServer, list[dict[str, Any]]]]:
    with MotoServer(no_auth_actions=1 + SETS) as moto:  # CreateRole, then SETS AssumeRole
        first = moto.assume_instance_role(ROLE, "set-0")
        account = first["AssumedRoleUser"]["Arn"].split(":")[4]
        sts = moto.client("sts")
        issued = [first] + [
            sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName=f"set-{n}"
            )
            for n in range(1, SETS)
        ]
        yield moto, issued


class Rotator(threading.Thread):
    """Serves the next moto-issued set every ROTATION seconds, expiring VALIDITY seconds later."""

    def __init__(self, imds: FakeIMDS, issued: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.imds = imds
        self.issued = issued
        self.stop = threading.Event()
        self.served: dict[str, str] = {}  # access key id -> the assumed role's ARN
        self.rotations = 0
        self.serve(0)

    def serve(self, n: int) -> None:
        answer = self.issued[n % len(self.issued)]
        credentials = answer["Credentials"]
        self.served[credentials["AccessKeyId"]] = answer["AssumedRoleUser"]["Arn"]
        self.imds.serve_credentials(
            credentials["AccessKeyId"],
            credentials["SecretAccessKey"],
            credentials["SessionToken"],
            datetime.now(timezone.utc) + timedelta(seconds=VALIDITY),
        )

    def run(self) -> None:
        while not self.stop.wait(ROTATION):
            self.rotations += 1
            self.serve(self.rotations)


def _get(port: int, path: str) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise AssertionError(f"{path}: HTTP {response.status}: {body[:200]!r}")
        answer: dict[str, Any] = json.loads(body)
        return answer
    finally:
        connection.close()


def _listening_port(process: subprocess.Popen[str], log: list[str]) -> int:
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        log.append(line)
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
    raise AssertionError("gunicorn did not start listening:\n" + "".join(log))


CASES = {
    "sync-preload": ["--workers", "2", "--preload"],
    "sync": ["--workers", "2"],
    "gthread": ["--workers", "2", "--worker-class", "gthread", "--threads", "4"],
    "gevent": ["--workers", "2", "--worker-class", "gevent", "--worker-connections", "50"],
    "sync-max-requests": ["--workers", "2", "--max-requests", "15", "--max-requests-jitter", "5"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_gunicorn_workers_serve_every_request_through_rotations(
    case: str,
    moto_sets: tuple[MotoServer, list[dict[str, Any]]],
    fake_imds: FakeIMDS,
    tmp_path: Path,
) -> None:
    if case == "gevent":
        pytest.importorskip("gevent")
    moto, issued = moto_sets
    rotator = Rotator(fake_imds, issued)
    env = stack_env(
        tmp_path,
        AWS_EC2_METADATA_SERVICE_ENDPOINT=fake_imds.endpoint,
        AWS_ENDPOINT_URL_STS=moto.endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    command = [
        sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--chdir", str(HERE),
        "--config", str(HERE / "gunicorn_conf.py"), "--timeout", "10", "--graceful-timeout", "3",
        *CASES[case], "wsgi_app:app",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    drain: threading.Thread | None = None
    failures: list[str] = []
    answers: list[dict[str, Any]] = []
    try:
        port = _listening_port(process, log)
        drain = threading.Thread(target=lambda: log.extend(process.stderr or []), daemon=True)
        drain.start()
        _get(port, "/")  # a worker is up
        fake_imds.reset_counts()
        rotator.start()
        end = time.monotonic() + LOAD_SECONDS

        def load(path: str) -> None:
            while time.monotonic() < end:
                try:
                    answers.append(_get(port, path))
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        clients = [threading.Thread(target=load, args=(p,)) for p in ("/sts", "/sts", "/")]
        for client in clients:
            client.start()
        for client in clients:
            client.join(LOAD_SECONDS + 30)
        assert not any(client.is_alive() for client in clients), "a request hung"
    finally:
        rotator.stop.set()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            pytest.fail("gunicorn did not stop within 15 s of SIGTERM:\n" + "".join(log))
        finally:
            if drain is not None:
                drain.join(5)
            assert process.stderr is not None
            process.stderr.close()
    text = "".join(log)
    assert failures == [], failures[:5]
    assert "WORKER TIMEOUT" not in text, text
    assert "Traceback" not in text, text
    signed = [answer for answer in answers if "arn" in answer]
    assert len(signed) >= 20, len(answers)
    for answer in signed:  # moto checked the signature; the caller is the set's role session
        assert answer["arn"] in {rotator.served[answer["key"]], rotator.served[answer["key_after"]]}
    keys = {answer["key"] for answer in answers}
    assert len(keys) >= 3, f"{len(keys)} sets seen over {rotator.rotations} rotations"
    workers = {answer["pid"] for answer in answers}
    gets = fake_imds.count(f"/latest/meta-data/iam/security-credentials/{fake_imds.role_name}")
    # At most one credentials GET per rotation per worker (+1 each for the first fetch).
    assert gets <= len(workers) * (rotator.rotations + 1) + 1, (gets, len(workers))
    if case == "sync-max-requests":
        assert len(workers) > 2, "--max-requests recycled no worker"
    assert process.returncode == 0, text
    assert_nothing_left_loopback(tmp_path)
