"""The broker in-process: what it hands out, what it refuses, and how it rides out faults.

Clients are botocore's own container-credentials pieces (``ContainerMetadataFetcher`` and
``RefreshableCredentials``, the two that ``ContainerProvider`` puts together), talking HTTP to a
real broker on loopback; IMDS is a FakeIMDS. Subprocess tests (``imdscreds exec`` / ``serve``)
are in ``test_broker_processes.py``.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials
from botocore.utils import ContainerMetadataFetcher
from dateutil.parser import parse

from imdscreds import IMDSClient, IMDSConfig, RoleCredentialsFetcher
from imdscreds.broker import BROKER_POLICY, Broker, TokenFile
from imdscreds.errors import ConfigError
from imdscreds.testing import FakeClock, FakeIMDS

CREDENTIALS_GET = "/latest/meta-data/iam/security-credentials-extended/imdscreds-demo-role"


@pytest.fixture
def token_file() -> Iterator[TokenFile]:
    token = TokenFile.create()
    yield token
    token.remove()


def make_broker(imds: FakeIMDS, token: TokenFile, **kwargs: Any) -> Broker:
    clock = kwargs.pop("clock", None)
    config = IMDSConfig.resolve(endpoint=imds.endpoint, environ={}, config_file=os.devnull)
    client = IMDSClient(config, **({} if clock is None else {"clock": clock}))
    extra = {} if clock is None else {"clock": clock}
    broker = Broker(RoleCredentialsFetcher(client).fetch, token=token.token, **extra, **kwargs)
    return broker.start()


def clocked_broker(
    fake_imds_factory: Callable[..., FakeIMDS], token: TokenFile
) -> tuple[FakeClock, FakeIMDS, Broker]:
    """A started broker and its FakeIMDS on one FakeClock that starts now."""
    clock = FakeClock(start=datetime.now(timezone.utc).replace(microsecond=0))
    imds = fake_imds_factory(clock=clock)
    return clock, imds, make_broker(imds, token, clock=clock)


@pytest.fixture
def broker(fake_imds: FakeIMDS, token_file: TokenFile) -> Iterator[Broker]:
    running = make_broker(fake_imds, token_file)
    assert running.wait_first_fetch(10)
    yield running
    running.stop()


def request(
    broker: Broker, headers: dict[str, str], *, path: str = "/credentials", method: str = "GET"
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=5)
    try:
        connection.putrequest(method, path, skip_host="Host" in headers)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def botocore_client(broker: Broker, token: TokenFile, now: Callable[[], datetime]) -> Any:
    """What botocore's ContainerProvider builds, with ``now`` as its clock."""
    fetcher = ContainerMetadataFetcher()

    def fetch() -> dict[str, Any]:
        response = fetcher.retrieve_full_uri(
            broker.url, headers={"Authorization": token.path.read_text()}
        )
        return {
            "access_key": response["AccessKeyId"],
            "secret_key": response["SecretAccessKey"],
            "token": response["Token"],
            "expiry_time": response["Expiration"],
        }

    first = fetch()
    return RefreshableCredentials(
        first["access_key"],
        first["secret_key"],
        first["token"],
        parse(first["expiry_time"]),
        fetch,
        "container-role",
        time_fetcher=now,
    )


# -- what it hands out -----------------------------------------------------------------------


def test_botocore_reads_the_brokers_credentials_in_the_container_format(
    fake_imds: FakeIMDS, broker: Broker, token_file: TokenFile
) -> None:
    credentials = botocore_client(broker, token_file, lambda: datetime.now(timezone.utc))
    issued = fake_imds.current_credentials
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        issued.access_key_id,
        issued.secret_access_key,
        issued.token,
    )
    status, document = request(
        broker, {"Host": f"127.0.0.1:{broker.port}", "Authorization": token_file.token}
    )
    assert status == 200
    assert document["Expiration"] == issued.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert document["AccountId"] == "123456789012"


def test_healthz_says_until_when_credentials_are_held_and_no_secret(
    fake_imds: FakeIMDS, broker: Broker
) -> None:
    status, health = request(broker, {}, path="/healthz")
    assert status == 200
    assert health["CredentialsHeld"] is True
    assert health["Status"] == "ok"
    assert health["AccessKeyId"] == fake_imds.current_credentials.access_key_id
    text = json.dumps(health)
    assert fake_imds.current_credentials.secret_access_key not in text
    assert fake_imds.current_credentials.token not in text


def test_never_had_credentials_answers_the_typed_error_and_hint_as_json_fast(
    fake_imds_factory: Callable[..., FakeIMDS], token_file: TokenFile
) -> None:
    imds = fake_imds_factory(scenario="no-profile")
    broker = make_broker(imds, token_file)
    try:
        assert broker.wait_first_fetch(10)
        began = time.monotonic()
        status, document = request(broker, {"Authorization": token_file.token})
        elapsed = time.monotonic() - began
        assert status == 503
        assert document["Code"] == "NoInstanceProfileError"
        assert "instance profile" in document["Hint"]
        assert elapsed < 1.0  # answered from the shared outcome, not one IMDS round per request
        _, health = request(broker, {}, path="/healthz")
        assert {k: health[k] for k in ("Status", "CredentialsHeld", "LastError")} == {
            "Status": "no-credentials",
            "CredentialsHeld": False,
            "LastError": document["Message"],
        }
        assert health["SecondsSinceLastGoodFetch"] is None
        assert health["Counters"]["RequestsUnavailable"] == 1
        assert health["Counters"]["UpstreamFetchesFailed"] >= 1
    finally:
        broker.stop()


# -- security ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "MissingToken"),
        ({"Authorization": "not-the-token"}, 403, "InvalidToken"),
        ({"Authorization": "LAST-BYTE"}, 403, "InvalidToken"),
        ({"Authorization": "TOKEN", "Host": "evil.example"}, 403, "HostNotAllowed"),
        ({"Authorization": "TOKEN", "Host": "evil.example:PORT"}, 403, "HostNotAllowed"),
        ({"Authorization": "TOKEN", "X-Forwarded-For": "10.0.0.1"}, 403, "ProxiedRequest"),
        ({"Authorization": "TOKEN", "Forwarded": "for=10.0.0.1"}, 403, "ProxiedRequest"),
    ],
)
def test_requests_without_the_token_or_from_elsewhere_are_refused_saying_why(
    fake_imds: FakeIMDS,
    broker: Broker,
    token_file: TokenFile,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="imdscreds")
    token = token_file.token
    last_byte = token[:-1] + ("A" if token[-1] != "A" else "B")
    sent = {
        name: value.replace("LAST-BYTE", last_byte)
        .replace("TOKEN", token)
        .replace("PORT", str(broker.port))
        for name, value in headers.items()
    }
    answer = request(broker, sent)
    assert answer[0] == status
    assert answer[1]["Code"] == code
    assert set(answer[1]) <= {"Code", "Message", "Hint"}
    secrets = [token, *(c.secret_access_key for c in fake_imds.issued_credentials)]
    secrets += [c.token for c in fake_imds.issued_credentials]
    seen = json.dumps(answer[1]) + "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in seen


def test_only_the_brokers_own_names_pass_the_host_check(
    broker: Broker, token_file: TokenFile
) -> None:
    for host in (f"127.0.0.1:{broker.port}", f"localhost:{broker.port}"):
        assert request(broker, {"Host": host, "Authorization": token_file.token})[0] == 200
    for host in (f"127.0.0.2:{broker.port}", "127.0.0.1", f"127.0.0.1:{broker.port + 1}"):
        assert request(broker, {"Host": host, "Authorization": token_file.token})[0] == 403


def test_a_flood_is_bounded_and_never_crowds_out_the_token_holders(
    fake_imds: FakeIMDS, token_file: TokenFile
) -> None:
    broker = make_broker(fake_imds, token_file, rate=20.0, burst=20.0)
    try:
        assert broker.wait_first_fetch(10)
        began = time.monotonic()
        refused = [
            _raw_answer(broker, "GET /credentials HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(60)
        ]
        answered = sum(1 for line in refused if line.startswith("HTTP/1.1 403"))
        elapsed = time.monotonic() - began
        # Beyond the bucket the flood is not even answered: the connection is closed.
        assert answered <= 20 + 20 * elapsed + 1
        assert refused.count("") >= 60 - (20 + 20 * elapsed + 1)
        # Token holders draw from their own bucket, untouched by the flood.
        assert request(broker, {"Authorization": token_file.token})[0] == 200
        statuses = [request(broker, {"Authorization": token_file.token})[0] for _ in range(40)]
        assert statuses.count(429) >= 1
        assert set(statuses) <= {200, 429}
    finally:
        broker.stop()


def test_at_the_connection_cap_the_oldest_waiting_connection_is_dropped_not_the_newest(
    fake_imds: FakeIMDS, token_file: TokenFile
) -> None:
    broker = make_broker(fake_imds, token_file, max_connections=4, head_timeout=1.0)
    held = [socket.create_connection(("127.0.0.1", broker.port), timeout=5) for _ in range(4)]
    try:
        assert broker.wait_first_fetch(10)
        # Four silent connections fill the cap; a real client still gets in, and the oldest
        # silent one is the one that goes.
        assert request(broker, {"Authorization": token_file.token})[0] == 200
        assert held[0].recv(1) == b""
        # The client's connection has left the queue: the cap is full again at the second new one.
        held += [socket.create_connection(("127.0.0.1", broker.port), timeout=5) for _ in "ab"]
        assert held[1].recv(1) == b""
        for sock in held[2:]:
            assert sock.recv(1) == b""  # every silent one goes after head_timeout
        assert broker.counters.dropped["Shed"] == 2
        assert broker.counters.dropped["HeadTimeout"] == 4
        assert request(broker, {"Authorization": token_file.token})[0] == 200
    finally:
        for sock in held:
            sock.close()
        broker.stop()


def _raw_answer(broker: Broker, text: str) -> str:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        sock.sendall(text.encode())
        try:
            return sock.recv(200).decode(errors="replace").split("\r\n", 1)[0]
        except ConnectionResetError:
            return ""


def test_the_server_socket_is_bound_to_loopback_only(broker: Broker, fake_imds: FakeIMDS) -> None:
    assert broker.bound_address == ("127.0.0.1", broker.port)
    with pytest.raises(ConfigError, match="loopback"):
        Broker(lambda: fake_imds.current_credentials, token="t" * 43, host="0.0.0.0")


def test_token_file_is_random_private_and_has_no_newline(token_file: TokenFile) -> None:
    content = token_file.path.read_bytes()
    assert len(content) >= 43  # 32 random bytes, URL-safe base64
    assert b"\n" not in content
    assert b"\r" not in content
    assert stat.S_IMODE(token_file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.path.parent.stat().st_mode) == 0o700
    other = TokenFile.create()
    try:
        assert other.token != token_file.token
    finally:
        other.remove()
    token_file.remove()
    assert not token_file.path.exists()
    assert not token_file.path.parent.exists()


def test_token_file_in_a_directory_others_can_enter_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigError, match="0755") as caught:
        TokenFile.create(shared / "token")
    assert "chmod 0700" in caught.value.hint
    assert not (shared / "token").exists()


def test_token_file_with_a_group_is_0640_in_a_0710_directory(tmp_path: Path) -> None:
    import grp

    group = grp.getgrgid(os.getegid()).gr_name
    token = TokenFile.create(tmp_path / "run" / "token", group=group)
    try:
        assert stat.S_IMODE(token.path.stat().st_mode) == 0o640
        assert stat.S_IMODE(token.path.parent.stat().st_mode) == 0o710
    finally:
        token.remove()
    with pytest.raises(ConfigError, match="not a group"):
        TokenFile.create(tmp_path / "x" / "token", group="no-such-group-here")


# -- rotations and faults, on a fake clock --------------------------------------------------


def _simulate(
    imds: FakeIMDS, broker: Broker, token: TokenFile, clock: FakeClock, hours: float
) -> tuple[set[str], list[str], int]:
    clients = [botocore_client(broker, token, clock.now) for _ in range(32)]
    keys: set[str] = set()
    errors: list[str] = []
    expired = 0
    for _ in range(int(hours * 3600 / 120)):
        clock.advance(120)
        time.sleep(0.003)  # the broker's prefetch thread looks every 5 ms of real time
        for credentials in clients:
            try:
                keys.add(credentials.get_frozen_credentials().access_key)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        current = broker.engine.peek()
        assert current is not None
        expired += current.expiration <= clock.now()
    return keys, errors, expired


def test_over_rotations_the_host_costs_imds_at_most_one_credentials_get_each(
    fake_imds_factory: Callable[..., FakeIMDS], token_file: TokenFile
) -> None:
    clock, imds, broker = clocked_broker(fake_imds_factory, token_file)
    try:
        assert broker.wait_first_fetch(10)
        imds.reset_counts()
        keys, errors, _ = _simulate(imds, broker, token_file, clock, hours=24)
    finally:
        broker.stop()
    gets = imds.count(CREDENTIALS_GET)
    assert errors == []
    # Every credentials GET brought the set that all 32 clients then moved to: one per rotation.
    assert gets == len(keys) - 1
    assert 3 <= gets <= 5  # 6-hour sets, refreshed 25-30 min before expiry: 24 h / ~5.5 h


def test_imds_down_longer_than_the_credentials_life_clients_keep_working_one_warning(
    fake_imds_factory: Callable[..., FakeIMDS],
    token_file: TokenFile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="imdscreds")
    clock, imds, broker = clocked_broker(fake_imds_factory, token_file)
    try:
        assert broker.wait_first_fetch(10)
        imds.scenario = "outage"
        _, errors, expired = _simulate(imds, broker, token_file, clock, hours=9)
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        imds.scenario = "healthy"
        keys_after, errors_after, _ = _simulate(imds, broker, token_file, clock, hours=1)
        recovered = broker.engine.peek()
    finally:
        broker.stop()
    assert errors == []
    assert errors_after == []
    assert expired > 0  # the outage outlived the set: served under static stability
    assert len(warnings) == 1
    assert "IMDS unavailable" in warnings[0].getMessage()
    assert recovered is not None
    assert recovered.expiration > clock.now()  # fresh from IMDS again, and the clients have it
    assert recovered.access_key_id in keys_after


def test_broker_policy_refreshes_before_the_clients_window() -> None:
    # botocore refreshes container credentials 15 min (advisory) / 10 min (mandatory) before
    # expiry; the broker must have new ones before the first of those.
    assert BROKER_POLICY.advisory_window >= 15 * 60 + 5 * 60
    assert BROKER_POLICY.mandatory_window > 15 * 60
    assert BROKER_POLICY.prefetch


def test_a_set_with_little_time_left_goes_out_with_an_expiration_past_the_clients_window(
    fake_imds_factory: Callable[..., FakeIMDS], token_file: TokenFile
) -> None:
    imds = fake_imds_factory(validity=600.0)  # IMDS's set has 10 min left: inside the SDK window
    broker = make_broker(imds, token_file)
    try:
        assert broker.wait_first_fetch(10)
        _, document = request(broker, {"Authorization": token_file.token})
    finally:
        broker.stop()
    handed = datetime.fromisoformat(document["Expiration"].replace("Z", "+00:00"))
    left = handed - datetime.now(timezone.utc)
    # The client comes back a minute before the set's true end, not on its every call.
    assert timedelta(minutes=15) < left <= timedelta(minutes=15, seconds=540 + 5)


def test_the_broker_serves_on_ipv6_loopback(fake_imds: FakeIMDS, token_file: TokenFile) -> None:
    try:
        broker = make_broker(fake_imds, token_file, host="::1")
    except ConfigError as exc:  # no IPv6 on this host
        pytest.skip(str(exc))
    try:
        assert broker.wait_first_fetch(10)
        assert broker.bound_address == ("::1", broker.port)
        assert broker.url == f"http://[::1]:{broker.port}/credentials"
        connection = http.client.HTTPConnection("::1", broker.port, timeout=5)
        connection.request("GET", "/credentials", headers={"Authorization": token_file.token})
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        broker.stop()
