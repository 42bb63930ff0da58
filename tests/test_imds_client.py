"""IMDSClient at the HTTP edge: tokens, retries, statuses, fallbacks, caps (with ``responses``)."""

from __future__ import annotations

import logging
import random

import pytest
import requests
import responses
import urllib3.exceptions

from imdscreds.config import IMDSConfig
from imdscreds.errors import (
    IMDSDisabledError,
    IMDSHTTPError,
    IMDSNotFoundError,
    IMDSUnreachableError,
    MalformedResponseError,
    MetadataDisabledError,
    TokenError,
)
from imdscreds.imds import IMDSClient
from imdscreds.testing import FakeClock
from imdscreds.transport import MAX_BODY_BYTES

ENDPOINT = "http://127.0.0.1:9"
TOKEN_URL = f"{ENDPOINT}/latest/api/token"
ID_URL = f"{ENDPOINT}/latest/meta-data/instance-id"


def make_client(clock: FakeClock | None = None, **settings: object) -> IMDSClient:
    config = IMDSConfig.resolve(
        endpoint=ENDPOINT, environ={}, config_file="/nonexistent/config", **settings
    )
    return IMDSClient(config, clock=clock or FakeClock(), rng=random.Random(7))


def refused() -> requests.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


@pytest.fixture
def mock() -> responses.RequestsMock:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def calls_to(mock: responses.RequestsMock, method: str, url: str) -> int:
    return sum(
        1 for call in mock.calls if call.request.method == method and call.request.url == url
    )


def test_token_is_put_once_with_six_hour_ttl_and_reused(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok-1")
    mock.add(responses.GET, ID_URL, body="i-0abc")
    client = make_client()
    assert client.get("/latest/meta-data/instance-id").text == "i-0abc"
    assert client.get("/latest/meta-data/instance-id").text == "i-0abc"
    assert calls_to(mock, "PUT", TOKEN_URL) == 1
    put = mock.calls[0].request
    assert put.headers["X-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    for call in mock.calls[1:]:
        assert call.request.headers["X-aws-ec2-metadata-token"] == "tok-1"


def test_token_is_renewed_before_it_expires(mock: responses.RequestsMock) -> None:
    clock = FakeClock()
    mock.add(responses.PUT, TOKEN_URL, body="tok-1")
    mock.add(responses.PUT, TOKEN_URL, body="tok-2")
    mock.add(responses.GET, ID_URL, body="i-0abc")
    client = make_client(clock)
    client.get("/latest/meta-data/instance-id")
    clock.advance(21600 - 301)
    client.get("/latest/meta-data/instance-id")
    assert calls_to(mock, "PUT", TOKEN_URL) == 1
    clock.advance(2)
    client.get("/latest/meta-data/instance-id")
    assert calls_to(mock, "PUT", TOKEN_URL) == 2
    assert mock.calls[-1].request.headers["X-aws-ec2-metadata-token"] == "tok-2"


def test_401_fetches_a_new_token_and_retries_once(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="stale")
    mock.add(responses.PUT, TOKEN_URL, body="fresh")
    mock.add(responses.GET, ID_URL, status=401)
    mock.add(responses.GET, ID_URL, body="i-0abc")
    client = make_client()
    assert client.get("/latest/meta-data/instance-id").text == "i-0abc"
    gets = [c.request for c in mock.calls if c.request.method == "GET"]
    assert [g.headers["X-aws-ec2-metadata-token"] for g in gets] == ["stale", "fresh"]


def test_401_twice_is_a_token_error(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, status=401)
    with pytest.raises(TokenError, match="401"):
        make_client().get("/latest/meta-data/instance-id")
    assert calls_to(mock, "GET", ID_URL) == 2


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_are_retried_until_success(mock: responses.RequestsMock, status: int) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, status=status)
    mock.add(responses.GET, ID_URL, status=status)
    mock.add(responses.GET, ID_URL, body="i-0abc")
    assert make_client().get("/latest/meta-data/instance-id").text == "i-0abc"
    assert calls_to(mock, "GET", ID_URL) == 3


@pytest.mark.parametrize(("status", "hint"), [(500, "usually brief"), (429, "throttled")])
def test_retries_are_bounded_by_attempts(
    mock: responses.RequestsMock, status: int, hint: str
) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, status=status)
    clock = FakeClock()
    started = clock.monotonic()
    with pytest.raises(IMDSHTTPError, match=hint) as caught:
        make_client(clock, attempts=4).get("/latest/meta-data/instance-id")
    assert caught.value.status == status
    assert calls_to(mock, "GET", ID_URL) == 4
    # Jittered exponential backoff: 3 sleeps, each at most its cap (1 s; 2 s after a 429).
    assert 0 < clock.monotonic() - started <= (6.0 if status == 429 else 3.0)


def test_throttled_retries_wait_long_enough_to_leave_the_throttled_second(
    mock: responses.RequestsMock,
) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, status=429)
    clock = FakeClock()
    with pytest.raises(IMDSHTTPError):
        make_client(clock, attempts=3).get("/latest/meta-data/instance-id")
    # Equal jitter: 0.25-0.5 s, then 0.5-1 s, so the third try lands in a later second.
    first, second = clock.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, IMDSHTTPError), (403, IMDSDisabledError), (404, IMDSNotFoundError)],
)
def test_client_errors_are_not_retried(
    mock: responses.RequestsMock, status: int, error: type[Exception]
) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, status=status)
    with pytest.raises(error):
        make_client().get("/latest/meta-data/instance-id")
    assert calls_to(mock, "GET", ID_URL) == 1


def test_redirects_are_not_followed(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, status=302, headers={"Location": "http://127.0.0.2/x"})
    with pytest.raises(IMDSHTTPError, match="unexpected 302") as caught:
        make_client().get("/latest/meta-data/instance-id")
    assert caught.value.status == 302
    assert len(mock.calls) == 2


def test_oversized_body_is_malformed(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, body=b"x" * (MAX_BODY_BYTES + 1))
    with pytest.raises(MalformedResponseError, match="larger than"):
        make_client().get("/latest/meta-data/instance-id")


def test_non_utf8_body_is_malformed(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, body=b"\xff\xfe\x00")
    with pytest.raises(MalformedResponseError, match="not UTF-8"):
        make_client().get("/latest/meta-data/instance-id")


def test_disabled_by_configuration_sends_nothing(mock: responses.RequestsMock) -> None:
    client = make_client(disabled=True)
    with pytest.raises(MetadataDisabledError, match="disabled by configuration \\(argument\\)"):
        client.get("/latest/meta-data/instance-id")
    assert len(mock.calls) == 0


def test_refused_connection_on_first_contact_is_not_retried(
    mock: responses.RequestsMock,
) -> None:
    mock.add(responses.PUT, TOKEN_URL, body=refused())
    with pytest.raises(IMDSUnreachableError, match="No instance metadata service") as caught:
        make_client(attempts=5).get("/latest/meta-data/instance-id")
    assert len(mock.calls) == 1
    assert "Is this an EC2 instance?" in str(caught.value)


def test_connection_errors_after_contact_are_retried(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, body=refused())
    mock.add(responses.GET, ID_URL, body=requests.exceptions.ReadTimeout())
    mock.add(responses.GET, ID_URL, body="i-0abc")
    assert make_client(attempts=3).get("/latest/meta-data/instance-id").text == "i-0abc"
    assert calls_to(mock, "GET", ID_URL) == 3


@pytest.mark.parametrize("status", [403, 404, 405])
def test_token_put_refused_falls_back_to_v1(
    mock: responses.RequestsMock, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    mock.add(responses.PUT, TOKEN_URL, status=status)
    mock.add(responses.GET, ID_URL, body="i-0abc")
    client = make_client()
    with caplog.at_level(logging.DEBUG, logger="imdscreds"):
        assert client.get("/latest/meta-data/instance-id").text == "i-0abc"
        assert client.get("/latest/meta-data/instance-id").text == "i-0abc"
    gets = [c.request for c in mock.calls if c.request.method == "GET"]
    assert all("X-aws-ec2-metadata-token" not in g.headers for g in gets)
    assert calls_to(mock, "PUT", TOKEN_URL) == 1
    assert "Falling back to IMDSv1" in caplog.text


@pytest.mark.parametrize(
    ("status", "error"), [(404, TokenError), (405, TokenError), (403, IMDSDisabledError)]
)
def test_token_put_refused_with_v1_disabled_is_an_error(
    mock: responses.RequestsMock, status: int, error: type[Exception]
) -> None:
    mock.add(responses.PUT, TOKEN_URL, status=status)
    with pytest.raises(error):
        make_client(v1_disabled=True).get("/latest/meta-data/instance-id")
    assert len(mock.calls) == 1


def test_token_put_that_never_answers_falls_back_to_v1_with_a_hop_limit_warning(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mock.add(responses.PUT, TOKEN_URL, body=requests.exceptions.ReadTimeout())
    mock.add(responses.GET, ID_URL, body="i-0abc")
    with caplog.at_level(logging.WARNING, logger="imdscreds"):
        assert make_client().get("/latest/meta-data/instance-id").text == "i-0abc"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "http_put_response_hop_limit = 2" in warnings[0].getMessage()
    assert calls_to(mock, "PUT", TOKEN_URL) == 1


def test_token_put_that_never_answers_with_v1_disabled_names_the_hop_limit(
    mock: responses.RequestsMock,
) -> None:
    mock.add(responses.PUT, TOKEN_URL, body=requests.exceptions.ReadTimeout())
    with pytest.raises(TokenError, match="hop limit") as caught:
        make_client(v1_disabled=True).get("/latest/meta-data/instance-id")
    assert "IMDSv1 fallback is disabled (argument)" in str(caught.value)


def test_v1_fallback_refused_by_imds_retries_with_a_token(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, status=405)
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(responses.GET, ID_URL, status=401)
    mock.add(responses.GET, ID_URL, body="i-0abc")
    assert make_client().get("/latest/meta-data/instance-id").text == "i-0abc"
    assert mock.calls[-1].request.headers["X-aws-ec2-metadata-token"] == "tok"


def test_token_bad_request_is_a_token_error(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, status=400)
    with pytest.raises(TokenError, match="400"):
        make_client().get("/latest/meta-data/instance-id")


def test_date_header_is_exposed_for_clock_checks(mock: responses.RequestsMock) -> None:
    mock.add(responses.PUT, TOKEN_URL, body="tok")
    mock.add(
        responses.GET, ID_URL, body="i-0abc", headers={"Date": "Thu, 01 Jan 2026 00:00:05 GMT"}
    )
    response = make_client().get("/latest/meta-data/instance-id")
    assert response.date is not None
    assert response.date.isoformat() == "2026-01-01T00:00:05+00:00"


def test_repr_shows_the_endpoint_only() -> None:
    assert repr(make_client()) == f"IMDSClient(endpoint={ENDPOINT!r})"
