"""Property-based: whatever arrives from outside, only our typed errors come out, and no secret.

Every parser and every value from outside is driven with generated input: the credentials
document, the role listing, iam/info and the identity document (through the doctor), the token
body, the Date header, and configuration values from the environment, a config file and arguments.
The wire-level ones go over a real socket to a ``ScriptedIMDS``, because that is where the value
enters. Properties: nothing escapes but ``IMDSCredsError``; every message is printable and bounded;
no generated secret key or session token appears in any message, ``str`` or ``repr``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_server import CREDENTIALS, LISTING, TOKEN, ScriptedIMDS, scripted_imds

from imdscreds.config import IMDSConfig, role_name_problem
from imdscreds.credentials import (
    RoleCredentials,
    RoleCredentialsFetcher,
    parse_credentials,
    parse_document,
    parse_timestamp,
)
from imdscreds.doctor import render_json, render_text, run_doctor
from imdscreds.errors import ConfigError, IMDSCredsError, MalformedResponseError
from imdscreds.imds import IMDSClient
from imdscreds.testing._server import Reply
from imdscreds.transport import parse_http_date
from imdscreds.untrusted import EARLIEST, LATEST

T = TypeVar("T")

# Pure parsers are cheap: more examples. Wire-level ones pay a round trip per example.
PURE = settings(max_examples=100, deadline=None)
WIRE = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DOCTOR = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# The longest message any outside value may cause (hints included).
MESSAGE_LIMIT = 2000

HOSTILE_PIECES = [
    "\r\n",
    "\n",
    "\r",
    "\x00",
    "\x07",
    "\x1b[2J",
    "\x1b]0;owned\x07",
    "\x9b",
    "\x7f",
    "\u2028",
    " ",
    "\t",
    "é",
    "..",
    ".",
    "/",
    "?",
    "#",
    "%2e",
    '"',
    "\\",
    "9" * 300,
]
hostile_text = st.lists(
    st.one_of(st.text(max_size=8), st.sampled_from(HOSTILE_PIECES)), max_size=6
).map("".join)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)
BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
# Each secret starts with a marker no message could hold by chance, so "not in the message" means
# "not quoted"; half of them also carry a hostile piece.
secrets = st.tuples(
    st.text(alphabet=BASE64, min_size=4, max_size=40),
    st.one_of(st.just(""), hostile_text),
).map(lambda parts: "wJalrSECRET" + parts[0] + parts[1])
tokens = st.tuples(
    st.text(alphabet=BASE64, min_size=4, max_size=60),
    st.one_of(st.just(""), hostile_text),
).map(lambda parts: "IQoJbTOKEN" + parts[0] + parts[1])

instants = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9998, 12, 30),
    timezones=st.just(timezone.utc),
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def iso(instant: datetime, zone: timezone) -> str:
    local = instant.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


timestamps = st.one_of(
    st.builds(iso, instants, offsets),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00Z\n",
            "2026-01-01T00:00:00+99:99",
        ]
    ),
    hostile_text,
    json_values,
)
credentials_documents = st.fixed_dictionaries(
    {},
    optional={
        "Code": st.one_of(
            st.sampled_from(["Success", "AssumeRoleUnauthorizedAccess", "InstanceProfileNotFound"]),
            json_values,
        ),
        "Message": json_values,
        "Type": st.just("AWS-HMAC"),
        "AccessKeyId": st.one_of(
            st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20).map(
                "ASIA".__add__
            ),
            hostile_text,
        ),
        "SecretAccessKey": secrets,
        "Token": tokens,
        "Expiration": timestamps,
        "LastUpdated": timestamps,
        "AccountId": st.one_of(st.just("123456789012"), json_values),
    },
)


def secret_values(document: dict[str, Any]) -> list[str]:
    return [
        value for key in ("SecretAccessKey", "Token") if isinstance(value := document.get(key), str)
    ]


def attempt(call: Callable[[], T]) -> tuple[T | None, Exception | None]:
    """The call's result, or what it raised: the property is about what escapes."""
    try:
        return call(), None
    except Exception as exc:
        return None, exc


def assert_safe(error: BaseException, secrets_in_play: list[str]) -> None:
    """Our type, a printable and bounded message, and no secret anywhere in it."""
    assert isinstance(error, IMDSCredsError), repr(error)
    shown = [str(error), repr(error), error.message, error.hint]
    shown += [str(value) for value in vars(error).values() if isinstance(value, str)]
    assert str(error).isprintable(), str(error)
    assert len(str(error)) < MESSAGE_LIMIT, len(str(error))
    for secret in secrets_in_play:
        for text in shown:
            assert secret not in text


def assert_credentials_safe(credentials: RoleCredentials, secrets_in_play: list[str]) -> None:
    for secret in secrets_in_play:
        assert secret not in repr(credentials)
    assert credentials.expiration.tzinfo is not None
    assert EARLIEST <= credentials.expiration < LATEST


def body_of(document: dict[str, Any], duplicate: str | None) -> str:
    body = json.dumps(document, indent=2)
    if duplicate is not None and len(document) and body.endswith("}"):
        # A second value for a key: as IMDS never sends, and json.loads would silently keep.
        body = body[:-1].rstrip() + f', "{duplicate}": "Success"}}'
    return body


# -- pure parsers ----------------------------------------------------------------------------------


@PURE
@given(credentials_documents, st.one_of(st.none(), st.sampled_from(["Code", "Token"])))
def test_any_credentials_document_parses_or_raises_our_error_without_a_secret(
    document: dict[str, Any], duplicate: str | None
) -> None:
    in_play = secret_values(document)
    credentials, error = attempt(lambda: parse_credentials(body_of(document, duplicate), "role"))
    if error is not None:
        assert_safe(error, in_play)
    else:
        assert duplicate is None or duplicate not in document
        assert document["Code"] == "Success"
        assert_credentials_safe(credentials, in_play)


@PURE
@given(st.one_of(st.text(), st.binary().map(lambda raw: raw.decode("latin-1"))))
def test_any_text_as_a_document_is_a_dict_or_malformed(text: str) -> None:
    document, error = attempt(lambda: parse_document(text, "The document"))
    if error is not None:
        assert isinstance(error, MalformedResponseError), repr(error)
        assert_safe(error, [])
    else:
        assert isinstance(document, dict)


@PURE
@given(st.integers(min_value=1, max_value=50_000), st.sampled_from(["[", '{"a":', '{"a":[']))
def test_any_depth_of_nesting_is_a_dict_or_malformed(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"a":': "}", '{"a":[': "]}"}[opener]
    text = opener * depth + "1" + closer * depth
    _, error = attempt(lambda: parse_document(text, "The document"))
    if error is not None:
        assert isinstance(error, MalformedResponseError), repr(error)
        assert_safe(error, [])


@PURE
@given(timestamps)
def test_any_timestamp_is_an_aware_plausible_instant_or_malformed(value: object) -> None:
    instant, error = attempt(lambda: parse_timestamp(value, "Expiration"))
    if error is not None:
        assert isinstance(error, MalformedResponseError), repr(error)
        assert_safe(error, [])
    else:
        assert instant.utcoffset() == timedelta(0)
        assert EARLIEST <= instant < LATEST


@PURE
@given(instants, offsets)
def test_every_real_instant_in_any_offset_round_trips(instant: datetime, zone: timezone) -> None:
    assert parse_timestamp(iso(instant, zone), "Expiration") == instant


@PURE
@given(
    st.one_of(
        st.text(),
        st.builds(
            "{}, {:02d} {} {} {:02d}:{:02d}:{:02d} {}".format,
            st.sampled_from(["Mon", "Tue", "Xyz"]),
            st.integers(0, 99),
            st.sampled_from(["Jan", "Dec", "Foo"]),
            st.integers(0, 10**20),
            st.integers(0, 99),
            st.integers(0, 99),
            st.integers(0, 99),
            st.one_of(
                st.sampled_from(["GMT", "UTC", "-0000", "+0000", "EST", ""]),
                st.integers(-(10**18), 10**18).map("{:+05d}".format),
            ),
        ),
    )
)
def test_any_date_header_is_a_plausible_utc_instant_or_none(value: str) -> None:
    instant = parse_http_date(value)
    if instant is not None:
        assert instant.utcoffset() == timedelta(0)
        assert EARLIEST <= instant < LATEST


def test_a_date_with_an_unknown_zone_is_taken_as_utc() -> None:
    assert parse_http_date("Tue, 01 Dec 2026 08:00:00 -0000") == datetime(
        2026, 12, 1, 8, tzinfo=timezone.utc
    )


# -- configuration ---------------------------------------------------------------------------------

ENV_VARS = [
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_EC2_METADATA_V1_DISABLED",
    "AWS_METADATA_SERVICE_TIMEOUT",
    "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
    "AWS_EC2_INSTANCE_PROFILE_NAME",
]
CONFIG_KEYS = [
    "disable_ec2_metadata",
    "ec2_metadata_service_endpoint",
    "ec2_metadata_service_endpoint_mode",
    "ec2_metadata_v1_disabled",
    "metadata_service_timeout",
    "metadata_service_num_attempts",
    "ec2_instance_profile_name",
]
argument_values = st.one_of(
    st.none(),
    hostile_text,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.just(10**5000),
)


def assert_resolves_or_config_error(resolve: Callable[[], IMDSConfig]) -> None:
    config, error = attempt(resolve)
    if error is not None:
        assert isinstance(error, ConfigError), repr(error)
        assert_safe(error, [])
        return
    assert config is not None
    if config.instance_profile_name is not None:
        assert role_name_problem(config.instance_profile_name) is None
    assert config.timeout > 0
    assert config.attempts >= 1


@PURE
@given(st.dictionaries(st.sampled_from(ENV_VARS), hostile_text, max_size=4))
def test_any_environment_resolves_or_is_a_config_error(env: dict[str, str]) -> None:
    assert_resolves_or_config_error(
        lambda: IMDSConfig.resolve(environ={**env, "AWS_CONFIG_FILE": "/nonexistent/imdscreds"})
    )


@pytest.fixture(scope="module")
def config_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as path:
        yield Path(path)


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(st.sampled_from(CONFIG_KEYS), hostile_text, max_size=4),
    st.sampled_from(["default", "profile other"]),
)
def test_any_config_file_resolves_or_is_a_config_error(
    config_dir: Path, values: dict[str, str], section: str
) -> None:
    path = config_dir / "config"
    lines = [f"[{section}]", *(f"{key} = {value}" for key, value in values.items())]
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    assert_resolves_or_config_error(
        lambda: IMDSConfig.resolve(environ={"AWS_PROFILE": "other"}, config_file=path)
    )


@PURE
@given(
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(
            (f.name for f in dataclasses.fields(IMDSConfig) if f.name != "sources"),
            argument_values,
        ),
    )
)
def test_any_arguments_resolve_or_are_a_config_error(arguments: dict[str, Any]) -> None:
    assert_resolves_or_config_error(
        lambda: IMDSConfig.resolve(environ={}, config_file="/nonexistent/imdscreds", **arguments)
    )


# -- over the wire ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wire() -> Iterator[ScriptedIMDS]:
    with scripted_imds() as server:
        yield server


def fetch_through(server: ScriptedIMDS) -> RoleCredentials:
    server.seen.clear()
    config = IMDSConfig.resolve(
        endpoint=server.endpoint, attempts=1, environ={}, config_file="/nonexistent/imdscreds"
    )
    with IMDSClient(config) as client:
        return RoleCredentialsFetcher(client).fetch()


VALID_DOCUMENT = json.dumps(
    {
        "Code": "Success",
        "AccessKeyId": "ASIAWIRE",
        "SecretAccessKey": "wJalrSECRETwire",
        "Token": "IQoJbTOKENwire",
        "Expiration": "2026-01-01T06:00:00Z",
    }
).encode()


@WIRE
@given(credentials_documents)
def test_any_credentials_document_over_the_wire(
    wire: ScriptedIMDS, document: dict[str, Any]
) -> None:
    wire.routes.update({TOKEN: b"scripted-token", LISTING: b"scripted-role"})
    wire.routes[CREDENTIALS] = json.dumps(document).encode()
    in_play = secret_values(document)
    credentials, error = attempt(lambda: fetch_through(wire))
    if error is not None:
        assert_safe(error, in_play)
    else:
        assert_credentials_safe(credentials, in_play)


role_listings = st.one_of(
    st.text(alphabet="abcXYZ019+=,.@_-", min_size=1, max_size=70),
    hostile_text,
    st.tuples(hostile_text, st.sampled_from(["\n", "\r\n", " \n"]), hostile_text).map("".join),
    st.sampled_from(["..", ".", "role?x=1", "role#frag", "%2e%2e", "a/b", "...", " role \n"]),
)


@WIRE
@given(role_listings)
def test_any_role_listing_requests_exactly_the_credentials_path_plus_that_name(
    wire: ScriptedIMDS, listing: str
) -> None:
    lines = listing.strip().splitlines()
    name = lines[0].strip() if lines else ""
    wire.routes.clear()
    wire.routes.update({TOKEN: b"scripted-token", LISTING: listing.encode()})
    if name:
        wire.routes[LISTING + name] = VALID_DOCUMENT
    credentials, error = attempt(lambda: fetch_through(wire))
    if error is not None:
        assert_safe(error, ["wJalrSECRETwire", "IQoJbTOKENwire"])
        # A name that is no IAM role name is never requested at all.
        assert [path for method, path in wire.seen if method == "GET"] == [LISTING]
    else:
        assert role_name_problem(name) is None
        assert credentials.role_name == name
        assert wire.seen[-1] == ("GET", LISTING + name)


token_bodies = st.one_of(
    tokens.map(str.encode),
    st.binary(max_size=80),
    st.sampled_from([b"", b" ", b"\r\n", b"x" * 5000]),
)


@WIRE
@given(token_bodies)
def test_any_token_body_is_used_as_sent_or_is_our_error_without_it(
    wire: ScriptedIMDS, body: bytes
) -> None:
    wire.routes.update({TOKEN: body, LISTING: b"scripted-role", CREDENTIALS: VALID_DOCUMENT})
    text = body.decode("utf-8", "replace").strip()
    in_play = [text] if text.startswith("IQoJbTOKEN") else []
    _, error = attempt(lambda: fetch_through(wire))
    if error is not None:
        assert_safe(error, in_play)
        assert wire.seen == [("PUT", TOKEN)]  # a GET never carried a token that was refused


date_headers = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.integers(0, 10**20).map("Tue, 01 Dec {} 00:00:00 GMT".format),
    st.integers(-(10**18), 10**18).map("Tue, 01 Dec 2026 00:00:00 {:+05d}".format),
)


@WIRE
@given(date_headers)
def test_any_date_header_over_the_wire_is_a_reading_or_none(wire: ScriptedIMDS, date: str) -> None:
    wire.routes.update({TOKEN: b"scripted-token", CREDENTIALS: VALID_DOCUMENT})
    wire.date = date
    config = IMDSConfig.resolve(endpoint=wire.endpoint, environ={}, config_file="/nonexistent")
    try:
        with IMDSClient(config) as client:
            response = client.get(CREDENTIALS)
    finally:
        wire.date = "Tue, 01 Dec 2026 00:00:00 GMT"
    if response.date is not None:
        assert EARLIEST <= response.date < LATEST


@DOCTOR
@given(
    credentials_documents,
    st.dictionaries(hostile_text, json_values, max_size=4),
    st.one_of(
        st.dictionaries(hostile_text, json_values, max_size=4),
        st.fixed_dictionaries(
            {"Code": json_values, "Message": json_values, "InstanceProfileArn": json_values}
        ),
    ),
    st.sampled_from(["json", "deep", "text"]),
)
def test_the_doctor_reports_any_identity_document_iam_info_and_credentials_without_a_secret(
    wire: ScriptedIMDS,
    credentials: dict[str, Any],
    identity: dict[str, Any],
    info: dict[str, Any],
    shape: str,
) -> None:
    def encoded(document: dict[str, Any]) -> bytes:
        if shape == "deep":
            return b"[" * 5000 + b"]" * 5000
        if shape == "text":
            return json.dumps(document)[1:].encode()
        return json.dumps(document).encode()

    wire.routes.clear()
    wire.routes.update(
        {
            TOKEN: b"scripted-token",
            LISTING: b"scripted-role",
            CREDENTIALS: json.dumps(credentials).encode(),
            "/latest/dynamic/instance-identity/document": encoded(identity),
            "/latest/meta-data/iam/info": encoded(info),
            "/latest/meta-data/instance-id": Reply(body=b"i-0123456789abcdef0"),
        }
    )
    report = run_doctor(
        environ={"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull},
        endpoint=wire.endpoint,
        offline=True,
    )
    failed_itself = [f.id for f in report.findings if "check itself failed" in f.summary]
    assert failed_itself == []
    text, document = render_text(report), render_json(report)
    assert text.replace("\n", "").isprintable()
    for secret in secret_values(credentials):
        assert secret not in text
        assert secret not in document
