"""Running ``imdscreds fake-imds`` in-process, for the CLI tests and the README's samples."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import pytest

from imdscreds import IMDSClient, IMDSConfig, RoleCredentialsFetcher
from imdscreds.cli import main


def free_port() -> int:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        return int(spare.getsockname()[1])


def serve_in_process(
    argv: list[str], client: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """``main(["fake-imds", ...])`` in this thread; ``client(endpoint)`` in another, then SIGTERM.

    The fake stops on SIGTERM as under a supervisor; ``--duration`` only bounds a failing test.
    """
    port = free_port()
    host = "::1" if "::1" in argv else "127.0.0.1"
    endpoint = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection((host, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            client(endpoint)
        except BaseException as exc:  # handed to the test thread
            failures.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    driver = threading.Thread(target=drive)
    driver.start()
    code = main(["fake-imds", "--port", str(port), "--duration", "30", *argv])
    driver.join(10)
    if failures:
        raise failures[0]
    out, err = capsys.readouterr()
    return code, out, err


def fetch_with_imdscreds(endpoint: str) -> None:
    config = IMDSConfig.resolve(endpoint=endpoint, environ={})
    with IMDSClient(config) as client:
        RoleCredentialsFetcher(client).fetch()
