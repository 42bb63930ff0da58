"""The network guard, and the suite's autouse environment that relies on it.

Every test that aims at a non-loopback address does so with *tripwires* installed below the guard:
stand-ins for the real socket calls that record being reached and send nothing. So even a broken
guard cannot make this file put a packet on the wire; it makes the test fail instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from imdscreds.testing import NonLoopbackConnectionError, block_non_loopback
from imdscreds.testing.guard import is_loopback_host

SOCKET_METHODS = ("connect", "connect_ex", "sendto", "sendmsg")
RESOLVERS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")


def _ip_literal(host: object) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def tripwires() -> Iterator[list[str]]:
    """Replace the real socket calls for the block; yields the names of those that were reached."""
    reached: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def tripwire(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            reached.append(name)
            raise AssertionError(f"the real {name} was reached through the guard")

        return call

    def numeric_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        # Turning an IP literal into a sockaddr asks nobody (AI_NUMERICHOST), so let it through:
        # code such as urllib3 resolves before it connects.
        if _ip_literal(host):
            return real_getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        return tripwire("getaddrinfo")(host, port, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for name in SOCKET_METHODS:
            patch.setattr(socket.socket, name, tripwire(name))
        for name in RESOLVERS:
            patch.setattr(socket, name, tripwire(name))
        patch.setattr(socket, "getaddrinfo", numeric_getaddrinfo)
        yield reached


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback here")


@pytest.mark.parametrize("host", ["169.254.169.254", "10.255.255.1", "0.0.0.0", "8.8.8.8"])
def test_connect_to_non_loopback_ipv4_raises_before_the_real_connect(host: str) -> None:
    with tripwires() as reached, block_non_loopback() as guard:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(NonLoopbackConnectionError, match=rf"connect to {host}:80 blocked"):
            sock.connect((host, 80))

    assert reached == []
    assert [str(attempt) for attempt in guard.blocked] == [f"connect {host}:80"]
    assert sock.fileno() == -1, "the guard closes the socket it refused, so nothing leaks"


@needs_ipv6
def test_connect_to_the_imds_ipv6_address_raises_before_the_real_connect() -> None:
    with tripwires() as reached, block_non_loopback() as guard:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        with pytest.raises(NonLoopbackConnectionError, match=r"\[fd00:ec2::254\]:80"):
            sock.connect(("fd00:ec2::254", 80, 0, 0))

    assert reached == []
    assert len(guard.blocked) == 1


def test_connect_ex_is_guarded_too() -> None:
    with tripwires() as reached, block_non_loopback() as guard:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(NonLoopbackConnectionError):
            sock.connect_ex(("169.254.169.254", 80))

    assert reached == []
    assert [a.operation for a in guard.blocked] == ["connect_ex"]


def test_create_connection_to_imds_is_blocked() -> None:
    with (
        tripwires() as reached,
        block_non_loopback() as guard,
        pytest.raises(NonLoopbackConnectionError),
    ):
        socket.create_connection(("169.254.169.254", 80), timeout=0.5)

    assert reached == []
    assert [str(a) for a in guard.blocked] == ["connect 169.254.169.254:80"]


def test_requests_to_imds_fails_with_the_guard_error() -> None:
    with tripwires() as reached, block_non_loopback() as guard, requests.Session() as session:
        session.trust_env = False
        with pytest.raises(NonLoopbackConnectionError):
            session.get("http://169.254.169.254/latest/meta-data/", timeout=0.5)

    assert reached == []
    assert [str(a) for a in guard.blocked] == ["connect 169.254.169.254:80"]


def test_udp_sendto_a_non_loopback_address_is_blocked() -> None:
    with (
        tripwires() as reached,
        block_non_loopback() as guard,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        with pytest.raises(NonLoopbackConnectionError):
            sock.sendto(b"x", ("10.255.255.1", 53))
        with pytest.raises(NonLoopbackConnectionError):
            sock.sendto(b"x", 0, ("10.255.255.1", 53))
        with pytest.raises(NonLoopbackConnectionError):
            sock.sendmsg([b"x"], [], 0, ("10.255.255.1", 53))

    assert reached == []
    assert [a.operation for a in guard.blocked] == ["sendto", "sendto", "sendmsg"]


@pytest.mark.parametrize(
    ("resolver", "argument"),
    [
        ("getaddrinfo", "instance-data.ec2.internal"),
        ("gethostbyname", "sts.amazonaws.com"),
        ("gethostbyname_ex", "example.com"),
        ("gethostbyaddr", "169.254.169.254"),
    ],
)
def test_resolving_a_real_name_is_blocked(resolver: str, argument: str) -> None:
    arguments = (argument, 80) if resolver == "getaddrinfo" else (argument,)
    with (
        tripwires() as reached,
        block_non_loopback() as guard,
        pytest.raises(NonLoopbackConnectionError, match=resolver),
    ):
        getattr(socket, resolver)(*arguments)

    assert reached == []
    assert [a.operation for a in guard.blocked] == [resolver]


def test_an_attempt_the_caller_swallowed_is_still_recorded() -> None:
    with tripwires(), block_non_loopback() as guard:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with contextlib.suppress(Exception):  # what botocore's IMDS fetcher does, more or less
            sock.connect(("169.254.169.254", 80))

    assert [str(a) for a in guard.blocked] == ["connect 169.254.169.254:80"]


def test_loopback_connections_work() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, block_non_loopback() as guard:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
        with socket.create_connection(("localhost", port), timeout=2):
            server.accept()[0].close()

    assert guard.blocked == []


@needs_ipv6
def test_ipv6_loopback_connections_work() -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as server:
        port = server.getsockname()[1]
        with block_non_loopback() as guard, socket.create_connection(("::1", port), timeout=2):
            server.accept()[0].close()

    assert guard.blocked == []


def test_unix_sockets_are_not_guarded(tmp_path: Any) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen()
        with block_non_loopback() as guard, socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            server.accept()[0].close()

    assert guard.blocked == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        (b"127.0.0.1", True),
        ("169.254.169.254", False),
        ("fd00:ec2::254", False),
        ("::ffff:169.254.169.254", False),
        ("0.0.0.0", False),
        ("", False),
        ("instance-data", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: object, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_exit_restores_exactly_what_was_there() -> None:
    methods_before = {name: socket.socket.__dict__.get(name) for name in SOCKET_METHODS}
    resolvers_before = {name: getattr(socket, name) for name in RESOLVERS}

    with block_non_loopback():
        assert socket.socket.__dict__.get("connect") is not methods_before["connect"]

    assert {name: socket.socket.__dict__.get(name) for name in SOCKET_METHODS} == methods_before
    assert {name: getattr(socket, name) for name in RESOLVERS} == resolvers_before


def test_nested_guards_record_in_the_innermost_and_unwind() -> None:
    with tripwires(), block_non_loopback() as outer:
        with block_non_loopback() as inner, pytest.raises(NonLoopbackConnectionError):
            socket.socket().connect(("10.255.255.1", 80))
        with pytest.raises(NonLoopbackConnectionError):
            socket.socket().connect(("10.255.255.2", 80))

    assert [str(a) for a in inner.blocked] == ["connect 10.255.255.1:80"]
    assert [str(a) for a in outer.blocked] == ["connect 10.255.255.2:80"]


def test_error_message_says_what_to_do() -> None:
    error = NonLoopbackConnectionError("connect", "169.254.169.254:80")

    assert isinstance(error, RuntimeError)
    assert "169.254.169.254:80" in str(error)
    assert "FakeIMDS" in str(error)


# -- the suite's autouse environment (tests/conftest.py) -------------------------------------------


def test_every_test_runs_behind_the_guard() -> None:
    assert "connect" in socket.socket.__dict__


def test_imds_endpoint_points_at_a_closed_loopback_port(unreachable_endpoint: str) -> None:
    assert os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == unreachable_endpoint
    port = int(unreachable_endpoint.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_no_aws_settings_or_proxies_leak_in_from_the_shell() -> None:
    leaked = {
        name
        for name in os.environ
        if name.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
        or (
            name.startswith("AWS_")
            and name
            not in {
                "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            }
        )
    }
    assert leaked == set()
    assert not os.path.exists(os.environ["AWS_CONFIG_FILE"])
    assert not os.path.exists(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def test_subprocesses_inherit_the_safe_environment() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; print(os.environ['AWS_EC2_METADATA_SERVICE_ENDPOINT'], "
            "os.environ.get('AWS_PROFILE'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )

    assert result.stdout.split() == [os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"], "None"]
