"""Running a broker: from the IMDS configuration to a serving broker and its token file, signals,
and a child process under it (``imdscreds exec``)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

from imdscreds._listeners import listener_uids
from imdscreds.broker.server import Broker
from imdscreds.broker.token import TOKEN_BYTES, TokenFile
from imdscreds.config import IMDSConfig
from imdscreds.container import ENV_FULL_URI, ENV_TOKEN_FILE
from imdscreds.credentials import RoleCredentialsFetcher
from imdscreds.errors import ConfigError
from imdscreds.imds import IMDSClient

__all__ = [
    "activation_socket",
    "broker_environment",
    "child_environment",
    "run_child",
    "running_broker",
    "wait_for_stop",
]

# What stops ``serve`` cleanly (the token file removed): every signal whose default would end it.
STOP_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
SD_LISTEN_FDS_START = 3
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


def activation_socket(environ: Mapping[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed (``LISTEN_PID``/``LISTEN_FDS``, fd 3), or None.

    The variables are removed once read, so that a child does not take the socket for its own.
    """
    env = os.environ if environ is None else environ
    pid, fds = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    if pid is None or fds is None:
        return None
    if pid != str(os.getpid()) or fds != "1":
        raise ConfigError(
            f"systemd socket activation passed LISTEN_FDS={fds!r} for LISTEN_PID={pid!r}; "
            f"`imdscreds serve` (pid {os.getpid()}) takes exactly one socket.",
            setting="LISTEN_FDS",
            source="env",
            hint="Give the .socket unit one ListenStream=127.0.0.1:PORT (examples/imdscreds.socket).",
        )
    if environ is None:
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    os.set_inheritable(sock.fileno(), False)
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.detach()
        raise ConfigError(
            "The socket systemd passed is not a TCP socket.",
            setting="LISTEN_FDS",
            source="env",
            hint="ListenStream=127.0.0.1:PORT in the .socket unit.",
        )
    return sock


def _port_taken(host: str, port: int) -> ConfigError:
    uids = listener_uids(host, port) if port else None
    holder = (
        f"uid {', '.join(map(str, sorted(uids)))} holds it" if uids else "another process holds it"
    )
    return ConfigError(
        f"Cannot listen on {host} port {port}: {holder}. The token file was left as it was.",
        setting="--port",
        source="argument",
        hint="If that is not this broker's user, another local user took the port: stop that "
        "process before clients send it their token (`ss -ltnp sport = :PORT` shows it), and run "
        "the broker from a systemd socket (examples/imdscreds.socket) so the port is never free.",
    )


@contextlib.contextmanager
def running_broker(
    config: IMDSConfig,
    *,
    port: int = 0,
    token_file: str | None = None,
    group: str | None = None,
    host: str = "127.0.0.1",
    listen_socket: socket.socket | None = None,
) -> Iterator[tuple[Broker, TokenFile]]:
    """A started broker for the instance role, and its token file; both gone after the block.

    The port is bound before the token file is written: if the port is taken, a file already
    there (a squatter's clients may read it) is neither removed nor rewritten.
    """
    if listen_socket is None and port and listener_uids(host, port):
        raise _port_taken(host, port)
    client = IMDSClient(config)
    secret = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        broker = Broker(
            RoleCredentialsFetcher(client).fetch,
            token=secret,
            host=host,
            port=port,
            listen_socket=listen_socket,
        )
    except ConfigError as exc:
        client.close()
        if exc.message.startswith("Cannot listen") and port:
            raise _port_taken(host, port) from None
        raise
    except BaseException:
        client.close()
        raise
    try:
        token = TokenFile.create(token_file, group=group, token=secret)
    except BaseException:
        broker.stop()
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


@contextlib.contextmanager
def signals_held(signals: Sequence[signal.Signals] = FORWARDED_SIGNALS) -> Iterator[None]:
    """Block ``signals`` in this thread (and threads started in the block) until the block ends.

    A signal sent meanwhile waits in the kernel and is delivered, to the handlers installed by
    then, when the block ends: a start-up has no window where SIGTERM kills the process before it
    can clean up. Threads the broker starts inside the block keep the signals blocked, so that
    they always reach the main thread, where Python runs its handlers.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _unblocked(signals: Sequence[signal.Signals]) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def unblocked() -> Iterator[None]:
        previous = signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return unblocked()


def wait_for_stop(
    signals: Sequence[signal.Signals] = STOP_SIGNALS, *, until: Callable[[], bool] | None = None
) -> int | None:
    """Block until one of ``signals`` arrives (main thread only); return its number.

    With ``until``: also return (None) once it returns True (polled). The signals are unblocked while
    waiting, so one held by :func:`signals_held` is taken here.
    """
    received: list[int] = []
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        with _unblocked(signals):
            while not stop.wait(0.05 if until is not None else 1.0):
                if until is not None and until():
                    break
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0] if received else None


def _death_signal() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM when this process dies (Linux ``PR_SET_PDEATHSIG``),
    and starts with no signal blocked. Resolved before the fork: the child only makes calls."""
    parent = os.getpid()
    prctl: Any = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        if prctl is not None:
            prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent:  # the parent died before the line above
                os._exit(128 + int(signal.SIGTERM))
        signal.pthread_sigmask(signal.SIG_SETMASK, ())

    return preexec


def run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv``, forwarding signals to it; its exit status (128 + N if signal N ended it).

    The forwarding handlers are installed, and the signals blocked, before the child starts; a
    signal that comes while it starts is held and forwarded once it runs. The child dies with
    SIGTERM if this process dies (even by SIGKILL), so no child outlives its broker.
    """
    started: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if started:
            with contextlib.suppress(ProcessLookupError):
                started[0].send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        with signals_held(FORWARDED_SIGNALS):
            child = subprocess.Popen(  # noqa: S603 - the user's own command
                list(argv),
                env=dict(env),
                preexec_fn=_death_signal(),  # noqa: PLW1509 - resolved before the fork; calls only
            )
            started.append(child)
        with _unblocked(FORWARDED_SIGNALS):
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
