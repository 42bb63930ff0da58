"""The suite's safety net: every test runs in a clean AWS environment and cannot leave loopback.

The fixtures ``fake_imds``, ``fake_imds_factory`` and ``fake_clock`` come from the imdscreds pytest
plugin (registered through the ``pytest11`` entry point when the package is installed).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from imdscreds.testing import block_non_loopback

_PROXY_VARIABLES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"})
# Privileged ports nobody listens on in a test environment, and that the kernel never hands out
# as ephemeral ports: a later FakeIMDS(port=0) can never land on them by chance.
_UNUSED_PORT_CANDIDATES = (9, 1, 7)


def _refuses(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="session")
def unreachable_endpoint() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens: connecting is refused at once."""
    for port in _UNUSED_PORT_CANDIDATES:
        if _refuses(port):
            return f"http://127.0.0.1:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _isolated_aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unreachable_endpoint: str
) -> Iterator[None]:
    """No AWS settings or proxies from the developer's shell; IMDS points at a closed port.

    The endpoint override means code under test that was given no endpoint can never reach the
    real IMDS, and subprocesses started by a test inherit the same environment. The network guard
    then fails the test if anything tried a non-loopback address, even if the attempt was caught.
    """
    for name in list(os.environ):
        if name.upper().startswith("AWS_") or name.upper() in _PROXY_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", unreachable_endpoint)
    with block_non_loopback() as guard:
        yield
    if guard.blocked:
        attempts = ", ".join(str(attempt) for attempt in guard.blocked)
        pytest.fail(f"the test tried to reach beyond loopback: {attempts}", pytrace=False)
