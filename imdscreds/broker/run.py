"""Running a broker: from the IMDS configuration to a serving broker and its token file, signals,
and a child process under it (``imdscreds exec``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType

from imdscreds.broker.server import Broker
from imdscreds.broker.token import TokenFile
from imdscreds.config import IMDSConfig
from imdscreds.container import ENV_FULL_URI, ENV_TOKEN_FILE
from imdscreds.credentials import RoleCredentialsFetcher
from imdscreds.imds import IMDSClient

__all__ = [
    "broker_environment",
    "child_environment",
    "run_child",
    "running_broker",
    "wait_for_stop",
]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What a supervisor or a terminal sends that the child, not the broker, should act on.
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGTTIN,
    signal.SIGTTOU,
)
# Variables that would make an SDK read other container credentials than the broker's: botocore
# prefers the ECS relative URI to the full one, and the inline token to nothing.
_SHADOWING = ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN")


@contextlib.contextmanager
def running_broker(
    config: IMDSConfig,
    *,
    port: int = 0,
    token_file: str | None = None,
    group: str | None = None,
    host: str = "127.0.0.1",
) -> Iterator[tuple[Broker, TokenFile]]:
    """A started broker for the instance role, and its token file; both gone after the block."""
    client = IMDSClient(config)
    token = TokenFile.create(token_file, group=group)
    try:
        broker = Broker(
            RoleCredentialsFetcher(client).fetch, token=token.token, host=host, port=port
        )
    except BaseException:
        token.remove()
        client.close()
        raise
    broker.start()
    try:
        yield broker, token
    finally:
        broker.stop()
        token.remove()
        client.close()


def broker_environment(broker: Broker, token: TokenFile) -> dict[str, str]:
    """The two variables an SDK needs to read from ``broker``."""
    return {ENV_FULL_URI: broker.url, ENV_TOKEN_FILE: str(token.path)}


def child_environment(base: Mapping[str, str], broker: Broker, token: TokenFile) -> dict[str, str]:
    """``base`` with the broker's two variables, and without any that would shadow them."""
    env = {name: value for name, value in base.items() if name not in _SHADOWING}
    env.update(broker_environment(broker, token))
    return env


def wait_for_stop(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> int:
    """Block until one of ``signals`` arrives (main thread only); return its number."""
    received: list[int] = []
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0]


def run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv``, forwarding signals to it; its exit status (128 + N if signal N ended it)."""
    child = subprocess.Popen(list(argv), env=dict(env))  # noqa: S603 - the user's own command

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        code = child.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return 128 - code if code < 0 else code


def command_not_found(argv: Sequence[str]) -> str | None:
    """Why ``argv[0]`` cannot be run, or None if it can (checked before the broker starts)."""
    name = argv[0]
    if os.sep in name:
        return None if os.access(name, os.X_OK) else f"{name}: not an executable file"
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if os.access(os.path.join(directory or ".", name), os.X_OK):
            return None
    return f"{name}: command not found on PATH"
