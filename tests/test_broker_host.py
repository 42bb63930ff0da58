"""Attacks on the broker from the host: another local uid, no token, the broker's port or files.

Each attack is built for real: a second uid (``nobody``) made with ``os.setuid`` in a subprocess
(these tests need root and skip without it), real sockets, real signals.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.credentials import ContainerProvider

import imdscreds
from imdscreds._listeners import listener_uids
from imdscreds.broker.token import TokenFile
from imdscreds.container import ContainerCredentialsFetcher, ContainerEndpoint
from imdscreds.errors import (
    ConfigError,
    EndpointOwnerError,
    IMDSCredsError,
    MalformedResponseError,
    TokenFileError,
)
from imdscreds.provider import ContainerCredentialProvider
from imdscreds.testing import FakeIMDS

IMDSCREDS = [sys.executable, "-m", "imdscreds"]
OTHER_UID = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a second uid needs root (setuid)")
linux_proc = pytest.mark.skipif(
    listener_uids("127.0.0.1", 1) is None, reason="no /proc/net/tcp on this host"
)

# A squatter: becomes `nobody`, then listens on the given port and answers every GET with fake
# credentials, printing each Authorization header it was sent.
SQUATTER = textwrap.dedent(
    """
    import encodings.idna, http.server, json, os, sys
    os.setgid(65534); os.setuid(65534)
    body = json.dumps({"AccessKeyId": "ASIAATTACKER0000000", "SecretAccessKey": "x" * 40,
                       "Token": "t" * 40, "Expiration": "2099-01-01T00:00:00Z"}).encode()
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            print("AUTH", self.headers.get("Authorization"), flush=True)
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()
    """
)


@pytest.fixture
def squatter() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", SQUATTER, "0"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        ready, _ = _readline(process, 10).split()
        assert ready == "READY"
        yield int(_), process
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    if not select.select([process.stdout], [], [], timeout)[0]:
        raise AssertionError("no line in time")
    return process.stdout.readline().strip()


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


# -- 1. the port of a dead broker, taken by another uid ---------------------------------------


@needs_root
@linux_proc
def test_library_refuses_a_port_squatter_and_never_sends_it_the_token(
    squatter: tuple[int, subprocess.Popen[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, process = squatter
    token = _private_dir(tmp_path / "run") / "token"
    token.write_text("the-real-broker-token")
    url = f"http://127.0.0.1:{port}/credentials"
    assert listener_uids("127.0.0.1", port) == {OTHER_UID}
    fetcher = ContainerCredentialsFetcher(ContainerEndpoint(url, str(token)), attempts=1)
    with pytest.raises(EndpointOwnerError) as caught:
        fetcher.fetch()
    error = caught.value
    assert (error.port, error.listener_uids, error.token_uid) == (port, (OTHER_UID,), 0)
    assert f"port {port}" in str(error)
    assert f"uid {OTHER_UID}" in str(error)
    assert "the-real-broker-token" not in str(error)
    # Through boto3_session (the engine-backed container provider), too.
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
    with pytest.raises(EndpointOwnerError) as through_boto3:
        imdscreds.boto3_session(region_name="us-east-1").get_credentials()
    assert "the-real-broker-token" not in str(through_boto3.value)
    # And the engine-backed provider install() puts in place of botocore's container-role one.
    with pytest.raises(EndpointOwnerError):
        ContainerCredentialProvider(environ=dict(os.environ)).load()
    # The squatter never saw the token (it logs every Authorization it gets).
    process.kill()
    assert process.stdout is not None
    out = process.stdout.read()
    assert "AUTH" not in out
    # Plain botocore cannot tell (it would send the token and take the squatter's credentials):
    # that is why the shipped unit holds the port in a systemd socket.


@needs_root
@linux_proc
def test_serve_on_a_squatted_port_names_the_uid_and_leaves_the_token_file(
    squatter: tuple[int, subprocess.Popen[str]], fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    port, _ = squatter
    token = _private_dir(tmp_path / "run") / "token"
    token.write_text("old-token")
    serve = [*IMDSCREDS, "serve", "--endpoint", fake_imds.endpoint]
    done = subprocess.run(
        [*serve, "--port", str(port), "--token-file", str(token)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"port {port}: uid {OTHER_UID} holds it" in done.stderr
    assert "Traceback" not in done.stderr
    assert token.read_text() == "old-token"  # neither removed nor rewritten


def test_serve_under_socket_activation_serves_the_inherited_socket(
    fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    token = _private_dir(tmp_path / "run") / "token"
    # As systemd does: the socket at fd 3, LISTEN_PID the pid that execs serve, LISTEN_FDS=1.
    command = " ".join(
        [*IMDSCREDS, "serve", "--endpoint", fake_imds.endpoint, "--token-file", str(token)]
    )
    fd = listener.fileno()
    process = subprocess.Popen(
        ["/bin/sh", "-c", f"LISTEN_PID=$$ LISTEN_FDS=1 exec {command}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(3,),
        preexec_fn=None if fd == 3 else (lambda: os.dup2(fd, 3)),  # noqa: PLW1509
    )
    listener.close()  # the service holds it now, as systemd would keep its own copy
    try:
        line = _readline(process, 30)
        assert line.startswith(f"imdscreds: serving on http://127.0.0.1:{port}/credentials")
        fetcher = ContainerCredentialsFetcher(
            ContainerEndpoint(f"http://127.0.0.1:{port}/credentials", str(token))
        )
        assert fetcher.fetch().access_key_id == fake_imds.current_credentials.access_key_id
        fetcher.close()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert not token.exists()


def test_a_bad_activation_environment_is_a_clear_error(fake_imds: FakeIMDS) -> None:
    done = subprocess.run(
        [*IMDSCREDS, "serve", "--endpoint", fake_imds.endpoint],
        env={**os.environ, "LISTEN_PID": "1", "LISTEN_FDS": "2"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "LISTEN_FDS='2'" in done.stderr
    assert "Traceback" not in done.stderr


# -- 2. the token file's place --------------------------------------------------------------


@needs_root
def test_a_directory_reached_through_another_users_symlink_is_refused(tmp_path: Path) -> None:
    target = _private_dir(tmp_path / "victim")
    (target / "token").write_text("precious")
    link = tmp_path / "run"
    link.symlink_to(target)
    os.lchown(link, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigError, match=f"symlink owned by uid {OTHER_UID}"):
        TokenFile.create(link / "token")
    assert (target / "token").read_text() == "precious"


@needs_root
def test_a_parent_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    parent = _private_dir(tmp_path / "theirs")
    os.chown(parent, OTHER_UID, OTHER_UID)
    mine = _private_dir(parent / "mine")
    with pytest.raises(ConfigError, match=f"owned by uid {OTHER_UID}"):
        TokenFile.create(mine / "token")
    assert not (mine / "token").exists()


def test_a_parent_writable_by_others_is_refused_a_sticky_one_is_not(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    mine = _private_dir(shared / "mine")
    with pytest.raises(ConfigError, match="writable by others"):
        TokenFile.create(mine / "token")
    shared.chmod(0o1777)  # as /tmp: others cannot rename or remove what is ours
    token = TokenFile.create(mine / "token")
    assert (mine / "token").read_text() == token.token
    token.remove()


@needs_root
def test_group_must_own_the_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o710)
    with pytest.raises(ConfigError, match="not nogroup") as caught:
        TokenFile.create(run / "token", group="nogroup")
    assert "chgrp nogroup" in str(caught.value)
    os.chown(run, -1, OTHER_UID)
    token = TokenFile.create(run / "token", group="nogroup")
    info = (run / "token").stat()
    assert (info.st_gid, info.st_mode & 0o777) == (OTHER_UID, 0o640)
    token.remove()


# -- 3. signals ------------------------------------------------------------------------------


def _no_token_dirs(tmpdir: Path) -> list[str]:
    return [name.name for name in tmpdir.iterdir() if name.name.startswith("imdscreds-")]


def _sleepers(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_sigterm_at_any_moment_of_exec_start_up_ends_it_cleanly(
    fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    mark = "31.4159"  # the child: `sleep 31.4159`, found in /proc if it outlived exec
    codes = []
    for attempt in range(12):
        process = subprocess.Popen(
            [*IMDSCREDS, "exec", "--endpoint", fake_imds.endpoint, "--", "sleep", mark],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.2 + 0.025 * attempt)  # from the imports to after the child's start
        process.send_signal(signal.SIGTERM)
        codes.append(process.wait(30))
    # Before exec has made anything (Python still starting) the default action ends it (-15);
    # from then on it ends itself, with 143, after cleaning up.
    assert set(codes) <= {-signal.SIGTERM, 128 + signal.SIGTERM}
    assert codes.count(128 + signal.SIGTERM) >= 6, codes
    assert _no_token_dirs(tmp_path) == []
    deadline = time.monotonic() + 5
    while _sleepers(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleepers(mark) == []


def test_sigterm_during_execs_first_fetch_stops_it_before_the_child_and_cleans_up(
    fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    slow = fake_imds
    slow.latency = 3.0  # the first fetch takes seconds
    marker = tmp_path / "child-ran"
    process = subprocess.Popen(
        [*IMDSCREDS, "exec", "--endpoint", slow.endpoint, "--", "touch", str(marker)],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _no_token_dirs(tmp_path):  # the broker is up, its first fetch in flight
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert "before touch started" in err
    assert not marker.exists()
    assert _no_token_dirs(tmp_path) == []


def test_sigkill_of_exec_takes_its_child_down(fake_imds: FakeIMDS, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(30)"
    )
    process = subprocess.Popen(
        [*IMDSCREDS, "exec", "--endpoint", fake_imds.endpoint, "--", sys.executable, "-c", script]
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        assert process.poll() is None
        time.sleep(0.05)
    child = int(pid_file.read_text())
    process.kill()
    process.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (reparented, not reaped yet) counts as gone.
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat_file:
        return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1])
def test_serve_removes_its_token_file_on_hup_quit_and_usr1(
    fake_imds: FakeIMDS, tmp_path: Path, signum: signal.Signals
) -> None:
    token = _private_dir(tmp_path / "run") / "token"
    process = subprocess.Popen(
        [*IMDSCREDS, "serve", "--endpoint", fake_imds.endpoint, "--token-file", str(token)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _readline(process, 30).startswith("imdscreds: serving on")
        assert token.exists()
        process.send_signal(signum)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert not token.exists()


# -- 4. odd token files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b" leading-space-secret", "leading or trailing space"),
        ("n\u00f6n-ascii-secret".encode(), "not printable"),
        (b"x" * 9000, "larger than 8192 bytes"),
        (b"", "is empty"),
    ],
)
def test_a_token_file_no_header_can_carry_is_a_typed_error_without_the_token(
    tmp_path: Path, content: bytes, why: str
) -> None:
    token = tmp_path / "token"
    token.write_bytes(content)
    fetcher = ContainerCredentialsFetcher(
        ContainerEndpoint("http://127.0.0.1:1/credentials", str(token)), attempts=1
    )
    with pytest.raises(TokenFileError, match=why) as caught:
        fetcher.fetch()
    assert "secret" not in str(caught.value)
    assert caught.value.hint


def test_a_token_file_that_is_a_device_or_fifo_is_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        fetcher = ContainerCredentialsFetcher(
            ContainerEndpoint("http://127.0.0.1:1/credentials", path), attempts=1
        )
        with pytest.raises(TokenFileError, match="not a regular file"):
            fetcher.fetch()


def test_boto3_session_on_a_bad_token_file_does_not_leak_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text(" leading-space-secret")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
    with pytest.raises(TokenFileError) as caught:
        imdscreds.boto3_session(region_name="us-east-1").get_credentials()
    assert "leading-space-secret" not in str(caught.value)


def test_an_oversized_container_answer_does_not_say_imds(tmp_path: Path) -> None:
    body = json.dumps({"AccessKeyId": "A" * 70000}).encode()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        token = tmp_path / "token"
        token.write_text("tok")
        fetcher = ContainerCredentialsFetcher(
            ContainerEndpoint(f"http://127.0.0.1:{port}/credentials", str(token)), attempts=1
        )
        import threading

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                )

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(MalformedResponseError) as caught:
            fetcher.fetch()
        thread.join(10)
    assert "container-credentials endpoint" in str(caught.value)
    assert "IMDS" not in str(caught.value)
    assert isinstance(caught.value, IMDSCredsError)


def test_botocore_container_provider_is_unchanged(tmp_path: Path) -> None:
    # Plain botocore is not ours to fix: its ContainerProvider exists and reads the same variables.
    assert ContainerProvider.ENV_VAR_AUTH_TOKEN_FILE == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"


def test_the_example_units_hold_the_port_in_a_socket_and_give_the_directory_the_group() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    service = (examples / "imdscreds.service").read_text(encoding="utf-8")
    sock = (examples / "imdscreds.socket").read_text(encoding="utf-8")
    assert "ListenStream=127.0.0.1:8077" in sock
    assert "Requires=imdscreds.socket" in service
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert "--port" not in exec_start  # the socket is systemd's, passed as fd 3
    group = exec_start.split("--group ", 1)[1].split()[0]
    assert f"\nGroup={group}\n" in service  # RuntimeDirectory= gets the service's group
    assert "RuntimeDirectoryMode=0710" in service
