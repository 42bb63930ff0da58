"""moto's server on loopback, for tests that need real STS and IAM answers (SigV4 checked).

``MotoServer(no_auth_actions=N)`` runs ``python -m moto.server -H 127.0.0.1 -p PORT`` in a child
process. With ``INITIAL_NO_AUTH_ACTION_COUNT=N`` moto accepts the first N actions without checking
signatures or policies, and checks both after that: set up roles and users inside that window, then
exercise the code under test with auth on. A test module turns it into a fixture (pytest puts
``tests/`` on ``sys.path``)::

    from moto_server import MotoServer

    @pytest.fixture
    def moto() -> Iterator[MotoServer]:
        with MotoServer(no_auth_actions=4) as server:
            yield server
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from types import TracebackType
from typing import Any

from imdscreds.testing import FakeIMDS

__all__ = ["TEST_ACCESS_KEY_ID", "TEST_SECRET_ACCESS_KEY", "MotoServer"]

# moto's default account accepts any key while auth is off (the first N actions).
TEST_ACCESS_KEY_ID = "AKIAMOTOSETUP0000000"
TEST_SECRET_ACCESS_KEY = "moto-setup-secret"
_START_TIMEOUT = 20.0


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MotoServer:
    """A moto server process on 127.0.0.1 and a free port."""

    def __init__(self, *, no_auth_actions: int | None = None, region: str = "us-east-1") -> None:
        self.no_auth_actions = no_auth_actions
        self.region = region
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``AWS_ENDPOINT_URL_STS`` and friends."""
        if self._process is None:
            raise RuntimeError("MotoServer is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        env = dict(os.environ)
        if self.no_auth_actions is not None:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.no_auth_actions)
        for _ in range(3):  # another process may take the port between the probe and moto's bind
            self.port = _free_loopback_port()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_until_listening():
                return self
            self.stop()
        raise RuntimeError("moto's server did not start listening on loopback")

    def _wait_until_listening(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def assume_instance_role(self, role_name: str, session_name: str) -> dict[str, Any]:
        """Create ``role_name`` trusting EC2 and assume it, as EC2 does for an instance profile.

        Two actions: run them inside the no-auth window (moto refuses AssumeRole for a role whose
        trust policy names only a Service principal once auth is on). Returns STS's answer:
        ``Credentials`` (to serve from FakeIMDS) and ``AssumedRoleUser.Arn``.
        """
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = self.client("iam").create_role(
            RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust)
        )
        answer: dict[str, Any] = self.client("sts").assume_role(
            RoleArn=role["Role"]["Arn"], RoleSessionName=session_name
        )
        return answer

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` at this server, with setup keys unless given others."""
        import boto3  # type: ignore[import-untyped]

        options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "aws_access_key_id": TEST_ACCESS_KEY_ID,
            "aws_secret_access_key": TEST_SECRET_ACCESS_KEY,
        }
        options.update(kwargs)
        # A session of its own: no env vars, files or IMDS are consulted for these keys.
        return boto3.session.Session().client(service, **options)


def serve_issued(imds: FakeIMDS, credentials: dict[str, Any]) -> None:
    """Have the fake IMDS serve credentials that moto's STS issued (``AssumeRole``'s Credentials)."""
    expiration = credentials["Expiration"]
    assert isinstance(expiration, datetime)
    imds.serve_credentials(
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
        expiration,
    )
