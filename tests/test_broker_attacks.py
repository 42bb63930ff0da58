"""Attacks on the broker's HTTP server, each built for real on 127.0.0.1, and what it does.

Slow heads (slowloris: a byte every so often, or silence, with every dropped connection reopened
at once), bodies smuggled behind a GET, two Host headers, oversized heads, a far-future
Expiration from upstream, and the operator's view of all of it. The attackers are
``benchmarks/attackers.py``; here they are 300 connections (scenario 12 runs 1,000).
"""

from __future__ import annotations

import http.client
import inspect
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from botocore.utils import ContainerMetadataFetcher
from test_broker import clocked_broker, make_broker, request, token_file  # noqa: F401 - token_file: a fixture

from benchmarks.attackers import Slowloris
from imdscreds.broker import Broker, TokenFile
from imdscreds.credentials import RoleCredentials
from imdscreds.testing import FakeIMDS

ATTACKERS = 300


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _gets(broker: Broker, token: str, count: int) -> list[int | str]:
    """``count`` plain GETs with the token, each on a new connection: status, or what failed."""
    outcomes: list[int | str] = []
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=5)
        try:
            connection.request("GET", "/credentials", headers={"Authorization": token})
            response = connection.getresponse()
            response.read()
            outcomes.append(response.status)
        except OSError as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()
    return outcomes


def _botocore_fetches(broker: Broker, token: TokenFile, count: int) -> list[str]:
    fetcher = ContainerMetadataFetcher()
    outcomes = []
    for _ in range(count):
        try:
            answer = fetcher.retrieve_full_uri(broker.url, headers={"Authorization": token.token})
            outcomes.append("ok" if answer.get("AccessKeyId") else "empty")
        except Exception as exc:  # botocore's own error, named in the assertion
            outcomes.append(type(exc).__name__)
    return outcomes


@pytest.fixture
def broker(fake_imds: FakeIMDS, token_file: TokenFile) -> Iterator[Broker]:  # noqa: F811
    running = make_broker(fake_imds, token_file)
    assert running.wait_first_fetch(10)
    yield running
    running.stop()


def _raw(broker: Broker, data: bytes) -> bytes:
    """Send ``data`` on one connection and read until the broker closes it."""
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def _host(broker: Broker) -> bytes:
    return f"127.0.0.1:{broker.port}".encode()


# -- slow heads ---------------------------------------------------------------------------------


def test_a_token_holder_is_served_while_hundreds_of_connections_trickle_their_heads(
    broker: Broker,
    token_file: TokenFile,  # noqa: F811
) -> None:
    with Slowloris(broker.port, ATTACKERS, mode="trickle", interval=0.2) as attack:
        assert _wait_until(lambda: broker.connections >= ATTACKERS)
        assert _wait_until(lambda: attack.bytes_sent >= 3 * ATTACKERS)  # each has trickled
        gets = _gets(broker, token_file.token, 20)
        fetches = _botocore_fetches(broker, token_file, 10)
        still_held = attack.open
    assert gets == [200] * 20
    assert fetches == ["ok"] * 10
    assert still_held == ATTACKERS  # the attack was in place the whole time


def test_reconnecting_attackers_over_the_cap_cannot_starve_a_newcomer(
    fake_imds: FakeIMDS,
    token_file: TokenFile,  # noqa: F811
) -> None:
    # A cap of 100 waiting heads against 300 silent connections, each reopened the moment it is
    # dropped: the broker sheds the oldest on every accept.
    broker = make_broker(fake_imds, token_file, max_connections=100)
    try:
        assert broker.wait_first_fetch(10)
        with Slowloris(broker.port, ATTACKERS, mode="silent") as attack:
            assert _wait_until(lambda: attack.reopened > ATTACKERS)
            gets = _gets(broker, token_file.token, 30)
            fetches = _botocore_fetches(broker, token_file, 5)
        assert gets == [200] * 30
        assert fetches == ["ok"] * 5
        assert broker.counters.dropped["Shed"] >= ATTACKERS
    finally:
        broker.stop()


def test_a_head_still_incomplete_at_the_deadline_is_dropped_though_bytes_keep_coming(
    fake_imds: FakeIMDS,
    token_file: TokenFile,  # noqa: F811
) -> None:
    # A byte every 0.1 s: a timeout per read never fires; the deadline for the whole head does.
    broker = make_broker(fake_imds, token_file, head_timeout=0.5)
    head = b"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
            try:
                for sent in range(1, len(head) + 1):
                    sock.send(head[sent - 1 : sent])
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
        assert sent < len(head)  # closed while still trickling: 20 s would be the whole head
        assert broker.counters.dropped["HeadTimeout"] == 1
    finally:
        broker.stop()


# -- framing ------------------------------------------------------------------------------------


def test_a_body_behind_a_get_is_refused_and_never_read_as_a_second_request(
    broker: Broker,
    token_file: TokenFile,  # noqa: F811
) -> None:
    smuggled = (
        b"GET /credentials HTTP/1.1\r\nHost: " + _host(broker) + b"\r\nAuthorization: "
        + token_file.token.encode() + b"\r\n\r\n"
    )  # fmt: skip
    for framing, status in (
        (f"Content-Length: {len(smuggled)}", b"413"),
        ("Transfer-Encoding: chunked", b"400"),
        ("Content-Length: 0\r\nContent-Length: 0", b"413"),
    ):
        answer = _raw(
            broker,
            b"GET /healthz HTTP/1.1\r\nHost: " + _host(broker) + b"\r\n"
            + framing.encode() + b"\r\n\r\n" + smuggled,
        )  # fmt: skip
        assert answer.startswith(b"HTTP/1.1 " + status), framing
        assert answer.count(b"HTTP/1.1 ") == 1  # the smuggled request got no answer
        assert b"Connection: close" in answer
        assert token_file.token.encode() not in answer
    assert broker.counters.refused["RequestBody"] == 3


def test_content_length_zero_on_a_get_is_served(broker: Broker, token_file: TokenFile) -> None:  # noqa: F811
    answer = _raw(
        broker,
        b"GET /credentials HTTP/1.1\r\nHost: " + _host(broker) + b"\r\nAuthorization: "
        + token_file.token.encode() + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (b"Host: HOST\r\nHost: HOST", b"400", "DuplicateHost"),
        (b"Host : HOST", b"400", "BadRequest"),  # whitespace before the colon
        (b"Host: HOST\r\nX-A: 1\r\n folded", b"400", "BadRequest"),  # obs-fold
        (b"Host: HOST\r\nX-Big: " + b"a" * 9000, b"431", "HeadTooLarge"),
        (b"Host: HOST\r\n" + b"X-A: 1\r\n" * 70 + b"X-B: 2", b"431", "HeadTooLarge"),
    ],
)
def test_heads_that_are_not_plainly_framed_are_refused_saying_why(
    broker: Broker,
    token_file: TokenFile,  # noqa: F811
    head: bytes,
    status: bytes,
    code: str,
) -> None:
    answer = _raw(
        broker,
        b"GET /credentials HTTP/1.1\r\nAuthorization: " + token_file.token.encode() + b"\r\n"
        + head.replace(b"HOST", _host(broker)) + b"\r\n\r\n",
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 " + status)
    document = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert document["Code"] == code
    assert document["Hint"]
    assert broker.counters.refused[code] == 1


def test_a_web_page_cannot_read_the_broker_cors_preflight_and_origin_are_refused(
    broker: Broker,
    token_file: TokenFile,  # noqa: F811
) -> None:
    # What a browser sends for fetch("http://127.0.0.1:PORT/credentials") from another origin:
    # a preflight (the Authorization header is not CORS-safelisted), or a plain GET without it.
    origin = b"\r\nOrigin: https://evil.example"
    preflight = _raw(
        broker,
        b"OPTIONS /credentials HTTP/1.1\r\nHost: " + _host(broker) + origin
        + b"\r\nAccess-Control-Request-Method: GET"
        + b"\r\nAccess-Control-Request-Headers: authorization\r\n\r\n",
    )  # fmt: skip
    plain = _raw(
        broker, b"GET /credentials HTTP/1.1\r\nHost: " + _host(broker) + origin + b"\r\n\r\n"
    )
    with_token = _raw(
        broker,
        b"GET /credentials HTTP/1.1\r\nHost: " + _host(broker) + origin
        + b"\r\nAuthorization: " + token_file.token.encode() + b"\r\n\r\n",
    )  # fmt: skip
    for answer in (preflight, plain, with_token):
        assert answer.startswith(b"HTTP/1.1 403")
        assert b"BrowserRequest" in answer
        assert b"access-control-" not in answer.lower()
    assert broker.counters.refused["BrowserRequest"] == 3


# -- a hostile upstream ---------------------------------------------------------------------------


def test_a_far_future_expiration_from_upstream_is_served_as_the_engines_twelve_hours(
    token_file: TokenFile,  # noqa: F811
) -> None:
    far = datetime(9998, 12, 31, tzinfo=timezone.utc)

    def fetch() -> RoleCredentials:
        return RoleCredentials("ASIAFARFUTURE", "secret", "token", far, "role")

    broker = Broker(fetch, token=token_file.token).start()
    try:
        assert broker.wait_first_fetch(10)
        status, document = request(broker, {"Authorization": token_file.token})
    finally:
        broker.stop()
    assert status == 200
    served = datetime.fromisoformat(document["Expiration"].replace("Z", "+00:00"))
    now = datetime.now(timezone.utc)
    # The library's longest life for a set (12 h); the broker refreshes 25-30 min before that,
    # so a client that comes back 15 min before the served Expiration finds the next set.
    assert now + timedelta(hours=11, minutes=59) < served <= now + timedelta(hours=12)


def test_an_upstream_error_whose_text_carries_a_secret_reaches_clients_by_its_type_only(
    token_file: TokenFile,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="imdscreds")
    leaked = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    def fetch() -> RoleCredentials:
        raise RuntimeError(f"upstream said: {leaked}")

    broker = Broker(fetch, token=token_file.token).start()
    try:
        assert broker.wait_first_fetch(10)
        status, document = request(broker, {"Authorization": token_file.token})
        _, health = request(broker, {}, path="/healthz")
    finally:
        broker.stop()
    assert status == 503
    assert "RuntimeError" in document["Message"]
    seen = json.dumps(document) + json.dumps(health)
    seen += "\n".join(record.getMessage() for record in caplog.records)
    assert leaked not in seen


# -- the operator's view --------------------------------------------------------------------------


def test_healthz_and_metrics_count_what_was_served_and_refused_and_show_no_secret(
    fake_imds: FakeIMDS,
    broker: Broker,
    token_file: TokenFile,  # noqa: F811
) -> None:
    assert request(broker, {"Authorization": token_file.token})[0] == 200
    assert request(broker, {"Authorization": "wrong"})[0] == 403
    assert request(broker, {})[0] == 401
    assert _raw(broker, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").startswith(
        b"HTTP/1.1 400"
    )
    status, health = request(broker, {}, path="/healthz")
    assert status == 200
    counters = health["Counters"]
    assert counters["RequestsServed"] == 1
    assert counters["RequestsRefused"] == {"DuplicateHost": 1, "InvalidToken": 1, "MissingToken": 1}
    assert counters["UpstreamFetches"] >= 1
    assert health["ServingStale"] is False
    assert 0 <= health["SecondsSinceLastGoodFetch"] < 3600
    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=5)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    metrics = response.read().decode()
    connection.close()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/plain; version=0.0.4")
    assert "imdscreds_broker_requests_served_total 1\n" in metrics
    assert 'imdscreds_broker_requests_refused_total{reason="InvalidToken"} 1\n' in metrics
    assert "imdscreds_broker_serving_stale 0\n" in metrics
    assert "imdscreds_broker_seconds_since_last_good_fetch " in metrics
    issued = fake_imds.issued_credentials
    secrets = [token_file.token, *(c.secret_access_key for c in issued), *(c.token for c in issued)]
    for secret in secrets:
        assert secret not in metrics
        assert secret not in json.dumps(health)
    for key in (c.access_key_id for c in issued):
        assert key not in metrics


def test_healthz_says_when_a_stale_set_is_served(
    fake_imds_factory: Callable[..., FakeIMDS],
    token_file: TokenFile,  # noqa: F811
) -> None:
    clock, imds, broker = clocked_broker(fake_imds_factory, token_file)
    try:
        assert broker.wait_first_fetch(10)
        imds.scenario = "outage"
        clock.advance(6 * 3600 - 20 * 60)  # inside the broker's refresh window: it tries, fails
        assert _wait_until(lambda: broker.counters.fetches_failed >= 1)
        _, health = request(broker, {}, path="/healthz")
        status, _ = request(broker, {"Authorization": token_file.token})
    finally:
        broker.stop()
    assert status == 200  # still served, as the library does while IMDS is down
    assert health["ServingStale"] is True
    assert health["Counters"]["UpstreamFetchesFailed"] >= 1


def test_serve_help_says_what_is_refused_with_the_brokers_own_limits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from imdscreds.broker.wire import MAX_HEAD, MAX_HEADERS
    from imdscreds.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    defaults = {name: p.default for name, p in inspect.signature(Broker).parameters.items()}
    assert "loopback address to listen on" in text  # --host has its help
    for said in (
        "no token (401)",
        "Transfer-Encoding",
        "two Host headers",
        "an Origin header (403",
        f"a head over {MAX_HEAD // 1024} KiB or {MAX_HEADERS} fields (431)",
        f"not complete {defaults['head_timeout']:g} s after connecting",
        f"when {defaults['max_connections']:,} wait",
        f"over {defaults['rate']:g} requests a second (429)",
        "GET /metrics",
    ):
        assert said in text, said
