"""Fetching role credentials from FakeIMDS, a real HTTP server on loopback: requests, scenarios, faults."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentialsFetcher, fetch_role_credentials
from imdscreds.errors import (
    IMDSCodeError,
    IMDSCredsError,
    IMDSDisabledError,
    IMDSHTTPError,
    IMDSUnreachableError,
    MalformedResponseError,
    NoInstanceProfileError,
    RoleNotFoundError,
    TokenError,
    TrustPolicyError,
)
from imdscreds.imds import IMDSClient
from imdscreds.testing import FakeClock, FakeIMDS

TOKEN = ("PUT", "/latest/api/token")
EXTENDED_LIST = ("GET", "/latest/meta-data/iam/security-credentials-extended/")


def config_for(endpoint: str, **settings: object) -> IMDSConfig:
    return IMDSConfig.resolve(endpoint=endpoint, **settings)  # type: ignore[arg-type]


def fetcher_for(imds: FakeIMDS, **settings: object) -> RoleCredentialsFetcher:
    return RoleCredentialsFetcher(IMDSClient(config_for(imds.endpoint, **settings)))


def test_cold_fetch_is_three_requests_and_a_second_fetch_is_one(fake_imds: FakeIMDS) -> None:
    fetcher = fetcher_for(fake_imds)
    credentials = fetcher.fetch()
    assert dict(fake_imds.requests) == {
        TOKEN: 1,
        EXTENDED_LIST: 1,
        ("GET", f"{EXTENDED_LIST[1]}{fake_imds.role_name}"): 1,
    }
    assert credentials.role_name == fake_imds.role_name
    assert credentials.account_id == fake_imds.account_id
    assert credentials.access_key_id == fake_imds.current_credentials.access_key_id
    assert credentials.expiration - credentials.last_updated == timedelta(hours=6)  # type: ignore[operator]

    fake_imds.reset_counts()
    fetcher.fetch()
    assert dict(fake_imds.requests) == {("GET", f"{EXTENDED_LIST[1]}{fake_imds.role_name}"): 1}


def test_environment_proxy_is_never_used_for_imds(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch, unreachable_endpoint: str
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, unreachable_endpoint)
    monkeypatch.setenv("NO_PROXY", "")
    credentials = fetch_role_credentials(config_for(fake_imds.endpoint))
    assert credentials.access_key_id.startswith("ASIA")


def test_legacy_only_imds_switches_to_legacy_for_good(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "legacy-only"
    fetcher = fetcher_for(fake_imds)
    credentials = fetcher.fetch()
    assert credentials.account_id is None
    assert fetcher.api == "legacy"
    fake_imds.reset_counts()
    fetcher.fetch()
    assert dict(fake_imds.requests) == {
        ("GET", f"/latest/meta-data/iam/security-credentials/{fake_imds.role_name}"): 1
    }


def test_role_swapped_on_the_instance_is_rediscovered(fake_imds: FakeIMDS) -> None:
    fetcher = fetcher_for(fake_imds)
    fetcher.fetch()
    fake_imds.role_name = "replacement-role"
    assert fetcher.fetch().role_name == "replacement-role"


def test_configured_role_name_skips_discovery(fake_imds: FakeIMDS) -> None:
    fetcher = fetcher_for(fake_imds, instance_profile_name=fake_imds.role_name)
    fetcher.fetch()
    assert EXTENDED_LIST not in fake_imds.requests


def test_configured_role_name_that_does_not_exist(fake_imds: FakeIMDS) -> None:
    with pytest.raises(RoleNotFoundError, match="'other-role' \\(argument\\) on either path"):
        fetcher_for(fake_imds, instance_profile_name="other-role").fetch()


def test_rotation_on_a_fake_clock_yields_new_credentials(
    fake_imds_factory: Callable[..., FakeIMDS],
) -> None:
    clock = FakeClock()
    imds = fake_imds_factory(clock=clock, rotation=3600)
    fetcher = RoleCredentialsFetcher(IMDSClient(config_for(imds.endpoint), clock=clock))
    first = fetcher.fetch()
    clock.advance(3600)
    second = fetcher.fetch()
    assert second.access_key_id != first.access_key_id
    assert second.last_updated == first.last_updated + timedelta(hours=1)  # type: ignore[operator]


def test_token_expiry_on_the_imds_side_is_recovered_with_one_new_token(
    fake_imds_factory: Callable[..., FakeIMDS],
) -> None:
    clock = FakeClock()
    imds = fake_imds_factory(clock=clock, max_token_ttl=21600, v1_allowed=False)
    fetcher = RoleCredentialsFetcher(IMDSClient(config_for(imds.endpoint), clock=clock))
    fetcher.fetch()
    clock.advance(21600 - 60)  # the client renews 5 min early, so this is a fresh PUT
    fetcher.fetch()
    assert imds.requests[TOKEN] == 2


# -- misconfigurations and faults: type and message --------------------------------------------

SCENARIO_ERRORS: list[tuple[str, type[IMDSCredsError], str]] = [
    ("no-profile", NoInstanceProfileError, "No instance profile is attached"),
    ("profile-without-role", NoInstanceProfileError, "associate-iam-instance-profile"),
    ("trust-policy", TrustPolicyError, "EC2 cannot assume the role"),
    ("profile-not-found", IMDSCodeError, "InstanceProfileNotFound"),
    ("imds-disabled", IMDSDisabledError, "--http-endpoint enabled"),
    ("server-error", IMDSHTTPError, "answered 500"),
    ("throttled", IMDSHTTPError, "throttled"),
    ("malformed", MalformedResponseError, "is not JSON"),
    ("outage", IMDSUnreachableError, "connection closed without an answer"),
]


@pytest.mark.parametrize(
    ("scenario", "error", "text"), SCENARIO_ERRORS, ids=[s[0] for s in SCENARIO_ERRORS]
)
def test_each_scenario_raises_its_own_error_with_a_hint(
    fake_imds: FakeIMDS, scenario: str, error: type[IMDSCredsError], text: str
) -> None:
    fake_imds.scenario = scenario
    with pytest.raises(error) as caught:
        fetcher_for(fake_imds, timeout=0.5, attempts=2).fetch()
    assert text in str(caught.value)
    assert caught.value.hint, "every error says what to do next"


def test_trust_policy_error_keeps_imds_message(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "trust-policy"
    with pytest.raises(TrustPolicyError) as caught:
        fetcher_for(fake_imds).fetch()
    assert caught.value.code == "AssumeRoleUnauthorizedAccess"
    assert caught.value.imds_message is not None
    assert "Please see documentation" in caught.value.imds_message
    assert '"Service": "ec2.amazonaws.com"' in str(caught.value)


def test_hop_limit_falls_back_to_v1_with_one_warning(
    fake_imds: FakeIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    fake_imds.scenario = "hop-limit"
    fetcher = fetcher_for(fake_imds, timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="imdscreds"):
        fetcher.fetch()
        fetcher.fetch()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "hop limit" in warnings[0]
    assert fake_imds.requests[TOKEN] == 1  # the unanswered PUT is not retried


def test_hop_limit_with_v1_disabled_is_a_token_error_naming_the_hop_limit(
    fake_imds: FakeIMDS,
) -> None:
    fake_imds.scenario = "hop-limit"
    with pytest.raises(TokenError) as caught:
        fetcher_for(fake_imds, timeout=0.3, v1_disabled=True).fetch()
    message = str(caught.value)
    assert "never answered the token request" in message
    assert "http_put_response_hop_limit = 2" in message


def test_hop_limit_where_imds_requires_tokens_names_the_hop_limit(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "hop-limit"
    fake_imds.v1_allowed = False
    with pytest.raises(TokenError, match="hop limit"):
        fetcher_for(fake_imds, timeout=0.3).fetch()


def test_blackhole_gives_up_after_the_token_put_and_one_tokenless_get(
    fake_imds: FakeIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    # Accepts connections, never answers: not a hop limit (the token-less GET is not answered
    # either) and not a busy IMDS (nothing ever answered), so no retries and no hop-limit WARNING.
    fake_imds.scenario = "blackhole"
    with (
        caplog.at_level(logging.WARNING, logger="imdscreds"),
        pytest.raises(IMDSUnreachableError) as caught,
    ):
        fetcher_for(fake_imds, timeout=0.2, attempts=3).fetch()
    assert "Nothing answers as IMDS" in str(caught.value)
    assert "token request was not answered either" in str(caught.value)
    assert fake_imds.count(method="PUT") == 1
    assert fake_imds.count(method="GET") == 1
    assert not caplog.records


def test_blackhole_with_v1_disabled_is_one_put(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "blackhole"
    with pytest.raises(TokenError, match="hop limit"):
        fetcher_for(fake_imds, timeout=0.2, attempts=3, v1_disabled=True).fetch()
    assert fake_imds.count() == 1


def test_refused_connection_is_unreachable_without_retries(unreachable_endpoint: str) -> None:
    with pytest.raises(IMDSUnreachableError) as caught:
        fetch_role_credentials(config_for(unreachable_endpoint, attempts=5))
    assert "Is this an EC2 instance?" in str(caught.value)


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A loopback port that accepts TCP connections and never reads or answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_expired_credentials_are_returned_for_the_caller_to_judge(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "expired"
    credentials = fetcher_for(fake_imds).fetch()
    assert credentials.expiration < credentials.last_updated  # type: ignore[operator]


def test_no_account_id_still_returns_credentials(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "no-account-id"
    assert fetcher_for(fake_imds).fetch().account_id is None


def test_v1_disabled_on_imds_is_fine_with_tokens(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "v1-disabled"
    assert fetcher_for(fake_imds).fetch().access_key_id.startswith("ASIA")


def test_a_silent_listener_times_out_as_unreachable(silent_listener: str) -> None:
    with pytest.raises(IMDSCredsError) as caught:
        fetch_role_credentials(config_for(silent_listener, timeout=0.2, attempts=2))
    assert isinstance(caught.value, IMDSUnreachableError | TokenError)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_fetch_over_ipv6(fake_imds_factory: Callable[..., FakeIMDS]) -> None:
    imds = fake_imds_factory(host="::1")
    assert imds.endpoint.startswith("http://[::1]:")
    assert fetch_role_credentials(config_for(imds.endpoint)).access_key_id.startswith("ASIA")


def test_an_unreachable_configured_endpoint_is_named_in_the_hint(unreachable_endpoint: str) -> None:
    with pytest.raises(IMDSUnreachableError) as raised:
        fetch_role_credentials(config_for(unreachable_endpoint))
    assert unreachable_endpoint in raised.value.hint
    assert "169.254.169.254" not in raised.value.hint
    assert "(argument)" in raised.value.hint
