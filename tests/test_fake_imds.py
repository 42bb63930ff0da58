"""FakeIMDS over real sockets, with plain ``requests`` as the client."""

from __future__ import annotations

import errno
import gc
import ipaddress
import json
import re
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests
from botocore.utils import InstanceMetadataRegionFetcher

import imdscreds.testing
from imdscreds.testing import (
    SCENARIO_DESCRIPTIONS,
    SCENARIOS,
    FakeClock,
    FakeIMDS,
    FakeIMDSBindError,
    RequestRecord,
)

TOKEN = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
LEGACY = "/latest/meta-data/iam/security-credentials/"
EXTENDED = "/latest/meta-data/iam/security-credentials-extended/"
INFO = "/latest/meta-data/iam/info"
ROLE = "imdscreds-demo-role"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)

Make = Callable[..., FakeIMDS]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def put_token(
    http: requests.Session, imds: FakeIMDS, ttl: str | None = "60", **headers: str
) -> requests.Response:
    if ttl is not None:
        headers[TTL_HEADER] = ttl
    return http.put(imds.endpoint + TOKEN, headers=headers, timeout=5)


def get(
    http: requests.Session, imds: FakeIMDS, path: str, token: str | None = None, **kw: Any
) -> requests.Response:
    headers = {} if token is None else {TOKEN_HEADER: token}
    return http.get(imds.endpoint + path, headers=headers, timeout=kw.pop("timeout", 5), **kw)


def token_of(http: requests.Session, imds: FakeIMDS, ttl: str = "60") -> str:
    response = put_token(http, imds, ttl)
    assert response.status_code == 200
    return response.text


# -- tokens ------------------------------------------------------------------------------------


def test_token_put_returns_a_token_and_echoes_the_ttl(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    response = put_token(http, fake_imds, "21600")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers[TTL_HEADER] == "21600"
    assert len(response.text) >= 40
    assert put_token(http, fake_imds).text != response.text


@pytest.mark.parametrize("ttl", ["0", "21601", None, "", "abc", "-5", "1.5", "60s"])
def test_token_ttl_missing_or_outside_1_to_21600_is_400(
    fake_imds: FakeIMDS, http: requests.Session, ttl: str | None
) -> None:
    response = put_token(http, fake_imds, ttl)

    assert response.status_code == 400
    assert "<title>400 - Bad Request</title>" in response.text


def test_token_ttl_limit_follows_max_token_ttl(make_imds: Make, http: requests.Session) -> None:
    imds = make_imds(max_token_ttl=60)

    assert put_token(http, imds, "60").status_code == 200
    assert put_token(http, imds, "61").status_code == 400
    assert put_token(http, imds, "1").status_code == 200


def test_token_put_through_a_proxy_is_403(fake_imds: FakeIMDS, http: requests.Session) -> None:
    response = put_token(http, fake_imds, **{"X-Forwarded-For": "203.0.113.7"})

    assert response.status_code == 403


def test_get_on_the_token_path_is_405(fake_imds: FakeIMDS, http: requests.Session) -> None:
    assert get(http, fake_imds, TOKEN).status_code == 405


def test_token_required_rejects_get_without_token(make_imds: Make, http: requests.Session) -> None:
    imds = make_imds(v1_allowed=False)

    response = get(http, imds, EXTENDED)

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "text/html"
    assert "<title>401 - Unauthorized</title>" in response.text
    assert get(http, imds, EXTENDED, token_of(http, imds)).text == ROLE


def test_v1_disabled_scenario_rejects_get_without_token(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="v1-disabled")

    assert get(http, imds, EXTENDED).status_code == 401
    assert get(http, imds, EXTENDED, token_of(http, imds)).status_code == 200


def test_v1_get_without_token_works_when_allowed(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    response = get(http, fake_imds, EXTENDED)

    assert response.status_code == 200
    assert response.text == ROLE


@pytest.mark.parametrize("v1_allowed", [True, False])
def test_an_unknown_token_is_401_even_when_v1_is_allowed(
    make_imds: Make, http: requests.Session, v1_allowed: bool
) -> None:
    imds = make_imds(v1_allowed=v1_allowed)

    assert get(http, imds, EXTENDED, "not-a-token").status_code == 401
    assert get(http, imds, EXTENDED, "").status_code == 401


def test_a_token_from_another_fake_is_401(make_imds: Make, http: requests.Session) -> None:
    first, second = make_imds(v1_allowed=False), make_imds(v1_allowed=False)

    assert get(http, second, EXTENDED, token_of(http, first)).status_code == 401


def test_token_expires_after_its_ttl_on_the_clock(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock, v1_allowed=False)
    token = token_of(http, imds, "60")

    clock.advance(59.9)
    assert get(http, imds, EXTENDED, token).status_code == 200
    clock.advance(0.1)
    assert get(http, imds, EXTENDED, token).status_code == 401


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LEGACY, LEGACY.rstrip("/"), EXTENDED, EXTENDED.rstrip("/")])
def test_role_list_answers_the_role_name_with_or_without_trailing_slash(
    fake_imds: FakeIMDS, http: requests.Session, path: str
) -> None:
    response = get(http, fake_imds, path, token_of(http, fake_imds))

    assert response.status_code == 200
    assert response.text == ROLE
    assert response.headers["Content-Length"] == str(len(ROLE))


def test_credentials_document_is_pretty_printed_like_imds(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)

    response = get(http, imds, EXTENDED + ROLE, token_of(http, imds))

    assert response.status_code == 200
    assert response.text.startswith('{\n  "Code" : "Success",\n  "LastUpdated" : ')
    document = json.loads(response.text)
    assert document == {
        "Code": "Success",
        "LastUpdated": "2026-01-01T00:00:00Z",
        "Type": "AWS-HMAC",
        "AccessKeyId": document["AccessKeyId"],
        "SecretAccessKey": document["SecretAccessKey"],
        "Token": document["Token"],
        "Expiration": "2026-01-01T06:00:00Z",
        "AccountId": "123456789012",
    }


def test_credential_material_looks_like_aws_and_differs_between_fakes(
    make_imds: Make, http: requests.Session
) -> None:
    first, second = make_imds(), make_imds()

    one = json.loads(get(http, first, LEGACY + ROLE).text)
    other = json.loads(get(http, second, LEGACY + ROLE).text)

    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", one["AccessKeyId"])
    assert len(one["SecretAccessKey"]) == 40
    assert len(one["Token"]) >= 300
    for key in ("AccessKeyId", "SecretAccessKey", "Token"):
        assert one[key] != other[key]


def test_legacy_document_has_no_account_id(fake_imds: FakeIMDS, http: requests.Session) -> None:
    document = json.loads(get(http, fake_imds, LEGACY + ROLE).text)

    assert document["Code"] == "Success"
    assert "AccountId" not in document


@pytest.mark.parametrize("settings", [{"extended": False}, {"scenario": "legacy-only"}])
def test_without_the_extended_endpoint_only_legacy_paths_answer(
    make_imds: Make, http: requests.Session, settings: dict[str, Any]
) -> None:
    imds = make_imds(**settings)

    assert get(http, imds, EXTENDED).status_code == 404
    assert get(http, imds, EXTENDED + ROLE).status_code == 404
    assert get(http, imds, LEGACY).text == ROLE
    assert get(http, imds, LEGACY + ROLE).status_code == 200


def test_extended_can_be_switched_off_while_running(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    fake_imds.extended = False

    assert get(http, fake_imds, EXTENDED).status_code == 404


def test_another_role_name_is_404(fake_imds: FakeIMDS, http: requests.Session) -> None:
    assert get(http, fake_imds, EXTENDED + "someone-else").status_code == 404
    assert get(http, fake_imds, LEGACY + "someone-else").status_code == 404


def test_a_changed_role_name_makes_the_old_credentials_path_404(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    fake_imds.role_name = "new-role"

    assert get(http, fake_imds, EXTENDED).text == "new-role"
    assert get(http, fake_imds, EXTENDED + ROLE).status_code == 404
    assert get(http, fake_imds, EXTENDED + "new-role").status_code == 200


def test_iam_info_names_the_instance_profile(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock, account_id="210987654321")

    info = json.loads(get(http, imds, INFO).text)

    assert info["Code"] == "Success"
    assert info["LastUpdated"] == "2026-01-01T00:00:00Z"
    assert info["InstanceProfileArn"] == f"arn:aws:iam::210987654321:instance-profile/{ROLE}"
    assert re.fullmatch(r"AIPA[A-Z0-9]{17}", info["InstanceProfileId"])


def test_instance_identity_document_and_plain_metadata(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(instance_id="i-0fedcba9876543210", region="eu-west-1")

    document = get(http, imds, "/latest/dynamic/instance-identity/document").json()

    assert document["accountId"] == "123456789012"
    assert document["instanceId"] == "i-0fedcba9876543210"
    assert document["region"] == "eu-west-1"
    assert document["availabilityZone"] == "eu-west-1a"
    assert document["privateIp"] == "10.0.0.12"
    for key in ("instanceType", "imageId", "pendingTime", "architecture", "version"):
        assert document[key]
    assert get(http, imds, "/latest/meta-data/instance-id").text == "i-0fedcba9876543210"
    assert get(http, imds, "/latest/meta-data/placement/region").text == "eu-west-1"


def test_unknown_path_is_404_with_the_imds_xhtml_page(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    response = get(http, fake_imds, "/latest/meta-data/nothing-here")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith('<?xml version="1.0" encoding="iso-8859-1"?>')
    assert "<title>404 - Not Found</title>" in response.text


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_other_methods_on_metadata_are_405(
    fake_imds: FakeIMDS, http: requests.Session, method: str
) -> None:
    response = http.request(method, fake_imds.endpoint + EXTENDED, timeout=5, data=b"ignored")

    assert response.status_code == 405


def test_every_response_carries_date_and_server_headers(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)
    clock.advance(90)

    for response in (put_token(http, imds), get(http, imds, EXTENDED), get(http, imds, "/x")):
        assert response.headers["Server"] == "EC2ws"
        assert parsedate_to_datetime(response.headers["Date"]) == START + timedelta(seconds=90)


def test_date_offset_skews_the_date_header(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)
    imds.date_offset = -600

    date = parsedate_to_datetime(get(http, imds, EXTENDED).headers["Date"])

    assert date == START - timedelta(minutes=10)


# -- rotation ----------------------------------------------------------------------------------


def fetch(http: requests.Session, imds: FakeIMDS) -> dict[str, Any]:
    document: dict[str, Any] = get(http, imds, EXTENDED + ROLE).json()
    return document


def test_credentials_rotate_with_the_clock(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)
    first = fetch(http, imds)

    clock.advance(1800)
    assert fetch(http, imds) == first
    clock.advance(1800)
    second = fetch(http, imds)

    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert second["SecretAccessKey"] != first["SecretAccessKey"]
    assert second["LastUpdated"] == "2026-01-01T01:00:00Z"
    assert second["Expiration"] == "2026-01-01T07:00:00Z"
    assert [c.access_key_id for c in imds.issued_credentials] == [
        first["AccessKeyId"],
        second["AccessKeyId"],
    ]


def test_a_day_long_jump_issues_every_set_of_the_day(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)

    clock.advance(24 * 3600 + 5)
    document = fetch(http, imds)

    issued = imds.issued_credentials
    assert len(issued) == 25
    assert len({c.access_key_id for c in issued}) == 25
    assert document["AccessKeyId"] == issued[-1].access_key_id
    assert document["LastUpdated"] == "2026-01-02T00:00:00Z"


def test_late_rotation_offers_new_credentials_five_minutes_before_expiry(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock, rotation=6 * 3600 - 300)
    first = fetch(http, imds)

    clock.advance(6 * 3600 - 301)
    assert fetch(http, imds)["AccessKeyId"] == first["AccessKeyId"]
    clock.advance(1)
    renewed = fetch(http, imds)

    assert renewed["AccessKeyId"] != first["AccessKeyId"]
    assert renewed["LastUpdated"] == "2026-01-01T05:55:00Z"


def test_rotate_now_issues_a_new_set_and_restarts_the_schedule(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)
    first = fetch(http, imds)
    clock.advance(600)

    imds.rotate_now()
    rotated = fetch(http, imds)

    assert rotated["AccessKeyId"] != first["AccessKeyId"]
    assert rotated["LastUpdated"] == "2026-01-01T00:10:00Z"
    clock.advance(3599)
    assert fetch(http, imds)["AccessKeyId"] == rotated["AccessKeyId"]
    clock.advance(1)
    assert fetch(http, imds)["AccessKeyId"] != rotated["AccessKeyId"]


def test_current_credentials_is_what_a_client_parses(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)
    clock.advance(3600.5)
    document = fetch(http, imds)

    current = imds.current_credentials

    assert current.access_key_id == document["AccessKeyId"]
    assert current.secret_access_key == document["SecretAccessKey"]
    assert current.token == document["Token"]
    assert current.role_name == ROLE
    assert current.account_id == "123456789012"
    assert current.last_updated == START + timedelta(hours=1)
    assert current.expiration == START + timedelta(hours=7)
    assert document["Token"] not in repr(current)


def test_serve_credentials_serves_a_fixed_set_until_rotate_now(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)
    expiration = START + timedelta(minutes=45)

    imds.serve_credentials("ASIAFIXEDFIXEDFIXED1", "s" * 40, "t" * 300, expiration, "999999999999")
    clock.advance(7200)  # no rotation while a fixed set is served
    served = fetch(http, imds)

    assert served["AccessKeyId"] == "ASIAFIXEDFIXEDFIXED1"
    assert served["SecretAccessKey"] == "s" * 40
    assert served["Token"] == "t" * 300
    assert served["Expiration"] == "2026-01-01T00:45:00Z"
    assert served["AccountId"] == "999999999999"
    assert imds.issued_credentials[-1].access_key_id == "ASIAFIXEDFIXEDFIXED1"
    imds.rotate_now()
    assert fetch(http, imds)["AccessKeyId"].startswith("ASIA")
    assert fetch(http, imds)["AccessKeyId"] != "ASIAFIXEDFIXEDFIXED1"


def test_serve_credentials_rejects_a_naive_expiration(fake_imds: FakeIMDS) -> None:
    with pytest.raises(ValueError, match="aware"):
        fake_imds.serve_credentials("ASIA", "s", "t", datetime(2026, 1, 1))


# -- scenarios ---------------------------------------------------------------------------------


def test_every_scenario_has_a_one_line_description() -> None:
    assert tuple(SCENARIO_DESCRIPTIONS) == SCENARIOS
    assert len(SCENARIOS) == 16
    for description in SCENARIO_DESCRIPTIONS.values():
        assert description
        assert "\n" not in description


def test_an_unknown_scenario_is_rejected_naming_the_valid_ones(fake_imds: FakeIMDS) -> None:
    with pytest.raises(ValueError, match=r"unknown FakeIMDS scenario 'sunny'; valid: healthy, "):
        FakeIMDS(scenario="sunny")
    with pytest.raises(ValueError, match="trust-policy"):
        fake_imds.scenario = "sunny"
    assert fake_imds.scenario == "healthy"


def test_no_profile_hides_every_iam_path_but_not_the_instance(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="no-profile")
    token = token_of(http, imds)

    for path in (LEGACY, LEGACY.rstrip("/"), EXTENDED, LEGACY + ROLE, EXTENDED + ROLE, INFO):
        response = get(http, imds, path, token)
        assert response.status_code == 404, path
        assert "404 - Not Found" in response.text
    assert get(http, imds, "/latest/meta-data/instance-id", token).status_code == 200


def test_profile_without_role_says_so_in_iam_info(make_imds: Make, http: requests.Session) -> None:
    imds = make_imds(scenario="profile-without-role")

    assert get(http, imds, LEGACY).status_code == 404
    assert get(http, imds, EXTENDED).status_code == 404
    info = get(http, imds, INFO)
    assert info.status_code == 200
    assert info.json() == {
        "Code": "InvalidInstanceProfile",
        "Message": "Instance Profile does not contain a role, or the role is invalid.",
        "LastUpdated": info.json()["LastUpdated"],
    }


def test_trust_policy_answers_200_with_assume_role_unauthorized_access(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="trust-policy")

    assert get(http, imds, EXTENDED).text == ROLE
    response = get(http, imds, EXTENDED + ROLE)

    assert response.status_code == 200
    document = response.json()
    assert document["Code"] == "AssumeRoleUnauthorizedAccess"
    assert document["Message"].startswith(f"EC2 cannot assume the role {ROLE}.  Please see ")
    assert "AccessKeyId" not in document
    assert get(http, imds, INFO).json()["Code"] == "Success"


def test_profile_not_found_shows_in_credentials_and_iam_info(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="profile-not-found")

    assert get(http, imds, LEGACY).text == ROLE
    credentials = get(http, imds, LEGACY + ROLE).json()
    info = get(http, imds, INFO).json()

    assert credentials["Code"] == info["Code"] == "InstanceProfileNotFound"
    assert credentials["Message"] == info["Message"]
    assert re.match(r"Instance Profile with Id AIPA[A-Z0-9]{17} cannot be found\.", info["Message"])


@pytest.mark.parametrize(
    ("scenario", "status"), [("imds-disabled", 403), ("server-error", 500), ("throttled", 429)]
)
def test_whole_service_failures_answer_every_request_alike(
    make_imds: Make, http: requests.Session, scenario: str, status: int
) -> None:
    imds = make_imds(scenario=scenario)

    assert put_token(http, imds).status_code == status
    assert get(http, imds, EXTENDED).status_code == status
    assert get(http, imds, "/latest/meta-data/instance-id").status_code == status


def test_imds_disabled_answers_403_with_the_xhtml_error_page_like_other_errors(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="imds-disabled")

    for response in (put_token(http, imds), get(http, imds, "/latest/meta-data/instance-id")):
        assert response.status_code == 403
        assert response.headers["Content-Type"] == "text/html"
        assert "<title>403 - Forbidden</title>" in response.text
        assert response.text.startswith('<?xml version="1.0" encoding="iso-8859-1"?>')


def test_malformed_serves_a_credentials_body_that_is_not_json(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="malformed")

    assert get(http, imds, EXTENDED).text == ROLE
    response = get(http, imds, EXTENDED + ROLE)
    assert response.status_code == 200
    assert response.text == "{not json"


def test_expired_serves_an_expiration_before_last_updated(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock, scenario="expired")

    document = fetch(http, imds)

    assert document["LastUpdated"] == "2026-01-01T00:00:00Z"
    assert document["Expiration"] == "2025-12-31T23:59:00Z"
    assert imds.current_credentials.expiration == START - timedelta(minutes=1)


def test_no_account_id_leaves_account_id_out_of_extended_documents(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="no-account-id")

    document = fetch(http, imds)

    assert document["Code"] == "Success"
    assert "AccountId" not in document
    assert imds.current_credentials.account_id is None


def test_outage_closes_every_connection_without_an_answer(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="outage")

    with pytest.raises(requests.ConnectionError):
        put_token(http, imds)
    with pytest.raises(requests.ConnectionError):
        get(http, imds, EXTENDED)

    assert imds.count(TOKEN, "PUT") == 1
    assert [status for *_, status in imds.log] == [None, None]


def test_blackhole_never_answers(make_imds: Make, http: requests.Session) -> None:
    imds = make_imds(scenario="blackhole")

    with pytest.raises(requests.ReadTimeout):
        get(http, imds, EXTENDED, timeout=(2, 0.2))


def test_hop_limit_token_put_times_out_while_a_v1_get_works(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="hop-limit")

    with pytest.raises(requests.ReadTimeout):
        http.put(imds.endpoint + TOKEN, headers={TTL_HEADER: "60"}, timeout=(2, 0.2))
    response = get(http, imds, EXTENDED)

    assert response.status_code == 200
    assert response.text == ROLE
    assert imds.count(TOKEN, "PUT") == 1


def test_hop_limit_with_tokens_required_leaves_nothing_that_works(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="hop-limit", v1_allowed=False)

    with pytest.raises(requests.ReadTimeout):
        http.put(imds.endpoint + TOKEN, headers={TTL_HEADER: "60"}, timeout=(2, 0.2))
    assert get(http, imds, EXTENDED).status_code == 401


def test_scenario_can_be_switched_while_running(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    fake_imds.scenario = "throttled"
    assert get(http, fake_imds, EXTENDED).status_code == 429

    fake_imds.scenario = "healthy"
    assert get(http, fake_imds, EXTENDED).status_code == 200


# -- faults ------------------------------------------------------------------------------------


def test_fail_next_fails_that_many_requests_then_recovers(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    fake_imds.fail_next(503, count=2)

    assert put_token(http, fake_imds).status_code == 503
    assert get(http, fake_imds, EXTENDED).status_code == 503
    assert get(http, fake_imds, EXTENDED).status_code == 200


def test_fail_next_only_hits_matching_paths(fake_imds: FakeIMDS, http: requests.Session) -> None:
    fake_imds.fail_next(500, path_prefix="/latest/meta-data/iam/security-credentials-extended/")

    assert put_token(http, fake_imds).status_code == 200
    assert get(http, fake_imds, LEGACY).status_code == 200
    response = get(http, fake_imds, EXTENDED + ROLE)
    assert response.status_code == 500
    assert "<title>500 - Internal Server Error</title>" in response.text
    assert get(http, fake_imds, EXTENDED + ROLE).status_code == 200


def test_fail_next_comes_before_the_scenario_and_the_token_check(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="imds-disabled", v1_allowed=False)
    imds.fail_next(429)

    assert get(http, imds, EXTENDED).status_code == 429
    assert get(http, imds, EXTENDED).status_code == 403


def test_throttle_answers_429_beyond_the_limit_within_one_second_of_the_clock(
    make_imds: Make, http: requests.Session, clock: FakeClock
) -> None:
    imds = make_imds(clock=clock)
    imds.throttle = 2

    assert put_token(http, imds).status_code == 200
    assert get(http, imds, EXTENDED).status_code == 200
    assert get(http, imds, EXTENDED).status_code == 429
    clock.advance(1.0)
    assert get(http, imds, EXTENDED).status_code == 200
    assert imds.throttled == 1
    imds.throttle = None
    assert [get(http, imds, EXTENDED).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(("status", "count"), [(200, 1), (302, 1), (600, 1), (500, 0)])
def test_fail_next_rejects_what_is_not_a_failure(
    fake_imds: FakeIMDS, status: int, count: int
) -> None:
    with pytest.raises(ValueError, match="fail_next"):
        fake_imds.fail_next(status, count)


def test_latency_delays_every_answer(fake_imds: FakeIMDS, http: requests.Session) -> None:
    fake_imds.latency = 0.2
    began = time.monotonic()

    response = get(http, fake_imds, EXTENDED)

    assert response.status_code == 200
    assert time.monotonic() - began >= 0.2
    with pytest.raises(requests.ReadTimeout):
        get(http, fake_imds, EXTENDED, timeout=(2, 0.05))


# -- counting ----------------------------------------------------------------------------------


def test_requests_are_counted_per_method_and_path_without_the_query(
    make_imds: Make, clock: FakeClock, http: requests.Session
) -> None:
    imds = make_imds(clock=clock)
    token = token_of(http, imds)
    get(http, imds, EXTENDED, token)
    clock.advance(5)
    get(http, imds, EXTENDED + "?x=1", token)
    get(http, imds, EXTENDED + ROLE, token)

    assert imds.requests == Counter(
        {("PUT", TOKEN): 1, ("GET", EXTENDED): 2, ("GET", EXTENDED + ROLE): 1}
    )
    assert imds.count() == 4
    assert imds.count(EXTENDED) == 2
    assert imds.count(method="GET") == 3
    assert imds.count(TOKEN, "GET") == 0
    assert imds.log == [
        (1000.0, "PUT", TOKEN, 200),
        (1000.0, "GET", EXTENDED, 200),
        (1005.0, "GET", EXTENDED, 200),
        (1005.0, "GET", EXTENDED + ROLE, 200),
    ]

    imds.reset_counts()
    assert imds.count() == 0
    assert imds.log == []


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.fixture
def make_imds(fake_imds_factory: Make) -> Make:
    return fake_imds_factory


def test_context_manager_starts_and_stops(http: requests.Session) -> None:
    with FakeIMDS() as imds:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", imds.endpoint)
        assert imds.endpoint.endswith(f":{imds.port}")
        assert get(http, imds, EXTENDED).status_code == 200
    http.close()

    with pytest.raises(requests.ConnectionError):
        get(http, imds, EXTENDED, timeout=1)


def test_port_is_unknown_until_started() -> None:
    imds = FakeIMDS()

    with pytest.raises(RuntimeError, match="start"):
        _ = imds.port
    assert "stopped" in repr(imds)


def test_starting_twice_is_an_error(fake_imds: FakeIMDS) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        fake_imds.start()


def test_a_stopped_fake_restarts_on_the_same_port(http: requests.Session) -> None:
    imds = FakeIMDS().start()
    endpoint = imds.endpoint
    imds.stop()
    imds.stop()  # idempotent

    with imds:
        assert imds.endpoint == endpoint
        assert get(http, imds, EXTENDED).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "169.254.169.254", "localhost", "::"])
def test_only_loopback_literals_can_be_bound(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeIMDS(host=host)


@pytest.mark.parametrize(
    "settings",
    [{"port": 70000}, {"validity": 0}, {"rotation": -1}, {"max_token_ttl": 0}],
)
def test_nonsense_settings_are_rejected(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="FakeIMDS"):
        FakeIMDS(**settings)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_serves_on_ipv6_loopback(make_imds: Make, http: requests.Session) -> None:
    imds = make_imds(host="::1")

    assert re.fullmatch(r"http://\[::1\]:\d+", imds.endpoint)
    assert get(http, imds, EXTENDED).text == ROLE


def _hold_a_token_put(imds: FakeIMDS) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", imds.port), timeout=5)
    client.sendall(
        f"PUT {TOKEN} HTTP/1.1\r\nHost: x\r\n{TTL_HEADER}: 60\r\nContent-Length: 0\r\n\r\n".encode()
    )
    deadline = time.monotonic() + 5
    while imds.count(TOKEN) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert imds.count(TOKEN) == 1
    return client


def test_stop_returns_at_once_with_a_request_held_open(make_imds: Make) -> None:
    imds = make_imds(scenario="hop-limit")
    with _hold_a_token_put(imds) as client:
        began = time.monotonic()
        imds.stop()
        took = time.monotonic() - began

        assert took < 1.0
        assert client.recv(1024) == b"", "the held request is closed without an answer"


def test_stop_ends_keep_alive_connections_and_their_threads(http: requests.Session) -> None:
    imds = FakeIMDS().start()
    for _ in range(3):
        assert get(http, imds, EXTENDED).status_code == 200  # one pooled connection stays open

    imds.stop()

    assert not [t for t in threading.enumerate() if t.name.startswith("FakeIMDS")]


def test_a_whole_life_leaves_no_unclosed_socket(http: requests.Session) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with FakeIMDS(scenario="hop-limit") as imds:
            get(http, imds, EXTENDED)
            with pytest.raises(requests.ReadTimeout):
                http.put(imds.endpoint + TOKEN, headers={TTL_HEADER: "60"}, timeout=(2, 0.1))
            imds.scenario = "outage"
            with pytest.raises(requests.ConnectionError):
                get(http, imds, EXTENDED)
        http.close()
        del imds
        gc.collect()

    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_keep_alive_requests_do_not_pay_the_nagle_delay(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    get(http, fake_imds, EXTENDED)
    began = time.monotonic()

    for _ in range(50):
        get(http, fake_imds, EXTENDED + ROLE)

    # With Nagle on, each reply's body waits ~40 ms for the ACK of its headers: 2 s for 50.
    assert time.monotonic() - began < 1.0


def test_wait_returns_once_stopped() -> None:
    imds = FakeIMDS().start()

    assert imds.wait(timeout=0.05) is False
    threading.Timer(0.05, imds.stop).start()
    assert imds.wait(timeout=5) is True


def test_the_fake_logs_nothing_to_stderr(
    fake_imds: FakeIMDS, http: requests.Session, capfd: pytest.CaptureFixture[str]
) -> None:
    get(http, fake_imds, EXTENDED)
    get(http, fake_imds, "/missing")
    put_token(http, fake_imds, "0")

    assert capfd.readouterr().err == ""


def test_plugin_fake_imds_fixture_is_running_and_healthy(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    assert fake_imds.scenario == "healthy"
    assert get(http, fake_imds, EXTENDED).text == ROLE
    assert fake_imds.errors == []


def test_public_names_of_imdscreds_testing() -> None:
    assert sorted(imdscreds.testing.__all__) == [
        "FakeClock",
        "FakeIMDS",
        "FakeIMDSBindError",
        "NonLoopbackConnectionError",
        "RequestRecord",
        "SCENARIOS",
        "SCENARIO_DESCRIPTIONS",
        "block_non_loopback",
    ]


def test_plugin_fixtures_carry_the_imdscreds_prefix_and_the_short_names_alias_them(
    imdscreds_fake_imds: FakeIMDS,
    fake_imds: FakeIMDS,
    imdscreds_fake_clock: FakeClock,
    fake_clock: FakeClock,
    imdscreds_fake_imds_factory: Make,
    fake_imds_factory: Make,
    http: requests.Session,
) -> None:
    assert fake_imds is imdscreds_fake_imds
    assert fake_clock is imdscreds_fake_clock
    assert fake_imds_factory is imdscreds_fake_imds_factory
    assert get(http, imdscreds_fake_imds, EXTENDED).text == ROLE
    made = imdscreds_fake_imds_factory(clock=imdscreds_fake_clock, scenario="legacy-only")
    assert made.clock is imdscreds_fake_clock
    assert get(http, made, EXTENDED).status_code == 404


# -- listening and watching ----------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_busy_port_is_an_oserror_naming_the_port_and_the_cause(busy_port: int) -> None:
    imds = FakeIMDS(port=busy_port)

    with pytest.raises(FakeIMDSBindError) as caught:
        imds.start()

    error = caught.value
    assert isinstance(error, OSError)
    assert error.errno == errno.EADDRINUSE
    assert error.port == busy_port
    assert str(error) == (
        f"the fake IMDS cannot listen on 127.0.0.1:{busy_port}: the address is already in use "
        "(another process listens on that port); choose another port, or port 0 for any free one"
    )
    # Nothing half-started is left behind: the same object starts once the port is free.
    assert repr(imds) == "FakeIMDS(stopped, scenario='healthy')"


def test_a_busy_port_leaks_no_socket(busy_port: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for _ in range(3):
            with pytest.raises(FakeIMDSBindError):
                FakeIMDS(port=busy_port).start()
        gc.collect()


def test_on_request_reports_each_request_and_whether_a_token_came_never_the_token(
    make_imds: Make, http: requests.Session
) -> None:
    seen: list[RequestRecord] = []
    imds = make_imds(on_request=seen.append, v1_allowed=False, scenario="legacy-only")
    token = token_of(http, imds)
    get(http, imds, EXTENDED, token)
    get(http, imds, LEGACY, token)
    get(http, imds, LEGACY)

    assert [(r.method, r.path, r.status, r.action, r.token_sent) for r in seen] == [
        ("PUT", TOKEN, 200, "respond", False),
        ("GET", EXTENDED, 404, "respond", True),
        ("GET", LEGACY, 200, "respond", True),
        ("GET", LEGACY, 401, "respond", False),
    ]
    assert all(token not in repr(record) for record in seen)
    assert all(record.time.tzinfo is not None for record in seen)


def test_on_request_reports_a_held_request_without_a_status(make_imds: Make) -> None:
    seen: list[RequestRecord] = []
    imds = make_imds(on_request=seen.append, scenario="hop-limit")
    with _hold_a_token_put(imds):
        assert [(r.path, r.status, r.action) for r in seen] == [(TOKEN, None, "hold")]


def test_concurrent_clients_are_all_served_and_counted(fake_imds: FakeIMDS) -> None:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            session.trust_env = False
            for _ in range(20):
                status = get(session, fake_imds, EXTENDED + ROLE).status_code
                with lock:
                    statuses[status] += 1

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == Counter({200: 320})
    assert fake_imds.count(EXTENDED + ROLE) == 320


# -- the meta-data tree as other SDKs read it -------------------------------------------------------
# The shapes are those of the EC2 user guide's "Instance metadata categories" table: ids with their
# prefixes, an Availability Zone that is its region plus a letter, listings one entry a line with
# subdirectories ending in ``/``. Each path is read with a token, as an IMDSv2 client does.

META = "/latest/meta-data/"


def read(http: requests.Session, imds: FakeIMDS, path: str) -> requests.Response:
    return get(http, imds, path, token_of(http, imds))


def _is_ipv4(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


# (path under /latest/meta-data/, what the documentation says the value looks like)
DOCUMENTED_SHAPES: list[tuple[str, Callable[[str], bool]]] = [
    ("ami-id", re.compile(r"ami-[0-9a-f]{8,17}").fullmatch),
    ("ami-launch-index", str.isdigit),
    ("ami-manifest-path", lambda v: v == "(unknown)" or "/" in v),
    (
        "hostname",
        re.compile(r"ip-\d+-\d+-\d+-\d+\.(ec2|[a-z]{2}-[a-z]+-\d\.compute)\.internal").fullmatch,
    ),
    ("instance-id", re.compile(r"i-[0-9a-f]{8,17}").fullmatch),
    ("instance-life-cycle", lambda v: v in ("on-demand", "spot", "scheduled", "capacity-block")),
    ("instance-type", re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+").fullmatch),
    ("local-hostname", re.compile(r"ip-\d+-\d+-\d+-\d+\.[a-z0-9.-]+\.internal").fullmatch),
    ("local-ipv4", _is_ipv4),
    ("mac", re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}").fullmatch),
    ("placement/availability-zone", re.compile(r"[a-z]{2}-[a-z]+-\d[a-z]").fullmatch),
    ("placement/availability-zone-id", re.compile(r"[a-z]{3,5}\d-az\d+").fullmatch),
    ("placement/region", re.compile(r"[a-z]{2}-[a-z]+-\d").fullmatch),
    ("profile", lambda v: v in ("default-hvm", "default-paravirtual")),
    ("reservation-id", re.compile(r"r-[0-9a-f]{8,17}").fullmatch),
    ("security-groups", lambda v: bool(v) and all(line.strip() for line in v.split("\n"))),
]


@pytest.mark.parametrize(
    ("path", "shape"), DOCUMENTED_SHAPES, ids=[p for p, _ in DOCUMENTED_SHAPES]
)
def test_metadata_leaf_has_the_documented_shape(
    fake_imds: FakeIMDS, http: requests.Session, path: str, shape: Callable[[str], bool]
) -> None:
    response = read(http, fake_imds, META + path)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    assert shape(response.text), f"{path}: {response.text!r}"


def test_metadata_listing_is_one_entry_a_line_and_every_entry_answers(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    listing = read(http, fake_imds, META).text.split("\n")

    assert {"ami-id", "instance-id", "iam/", "placement/", "local-ipv4"} <= set(listing)
    assert {path for path, _ in DOCUMENTED_SHAPES if "/" not in path} <= set(listing)
    for entry in listing:
        assert entry == entry.strip()
        assert read(http, fake_imds, META + entry).status_code == 200, entry


def test_the_listing_without_its_trailing_slash_is_the_same(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    assert read(http, fake_imds, "/latest/meta-data").text == read(http, fake_imds, META).text


def test_placement_lists_zone_zone_id_and_region(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    listing = read(http, fake_imds, META + "placement/").text

    assert listing.split("\n") == ["availability-zone", "availability-zone-id", "region"]


def test_iam_lists_info_and_the_credentials_directory(
    fake_imds: FakeIMDS, http: requests.Session
) -> None:
    assert read(http, fake_imds, META + "iam/").text.split("\n") == [
        "info",
        "security-credentials/",
    ]


def test_without_an_instance_profile_there_is_no_iam_category(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(scenario="no-profile")

    assert "iam/" not in read(http, imds, META).text.split("\n")
    response = read(http, imds, META + "iam/")
    assert response.status_code == 404
    assert "<title>404 - Not Found</title>" in response.text


def test_an_unknown_category_is_the_404_page(fake_imds: FakeIMDS, http: requests.Session) -> None:
    response = read(http, fake_imds, META + "no-such-category")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html"


def test_the_leaves_agree_with_the_identity_document(
    make_imds: Make, http: requests.Session
) -> None:
    imds = make_imds(region="ap-northeast-1", instance_id="i-0fedcba9876543210")
    document = read(http, imds, "/latest/dynamic/instance-identity/document").json()

    assert read(http, imds, META + "instance-id").text == document["instanceId"]
    assert read(http, imds, META + "placement/region").text == document["region"]
    assert (
        read(http, imds, META + "placement/availability-zone").text == document["availabilityZone"]
    )
    assert read(http, imds, META + "placement/availability-zone-id").text == "apne1-az1"
    assert read(http, imds, META + "instance-type").text == document["instanceType"]
    assert read(http, imds, META + "local-ipv4").text == document["privateIp"]
    assert read(http, imds, META + "ami-id").text == document["imageId"]
    assert read(http, imds, META + "hostname").text.endswith(".ap-northeast-1.compute.internal")


def test_botocore_finds_the_region_through_the_availability_zone(make_imds: Make) -> None:
    # What botocore does for defaults_mode=auto: PUT a token, GET placement/availability-zone/.
    imds = make_imds(region="eu-west-1")
    fetcher = InstanceMetadataRegionFetcher(base_url=imds.endpoint + "/", timeout=5)

    assert fetcher.retrieve_region() == "eu-west-1"
    assert imds.count(META + "placement/availability-zone/") == 1
