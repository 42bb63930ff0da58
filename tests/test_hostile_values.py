"""Hostile or broken values from outside: each becomes our typed error, never a leak or a traceback.

Each test builds the situation over a real socket: ``ScriptedIMDS`` sends bytes IMDS never would
(a deep document, a token with CR/LF, a Date header with a 20-digit year), ``FakeIMDS`` plays
IMDS with a hostile value in an otherwise healthy answer.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from scripted_server import CREDENTIALS, LISTING, TOKEN, scripted_imds

import imdscreds.provider
from imdscreds.cli import main
from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentialsFetcher, parse_credentials, parse_timestamp
from imdscreds.errors import (
    ConfigError,
    IMDSCodeError,
    IMDSCredsError,
    MalformedResponseError,
    TokenError,
)
from imdscreds.imds import IMDSClient
from imdscreds.testing import FakeIMDS
from imdscreds.testing._server import Reply
from imdscreds.transport import parse_http_date

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN_VALUE = "IQoJb3JpZ2luX2VjEXAMPLETOKEN+/="


def document(**fields: object) -> str:
    base: dict[str, object] = {
        "Code": "Success",
        "LastUpdated": "2026-01-01T00:00:00Z",
        "Type": "AWS-HMAC",
        "AccessKeyId": "ASIAEXAMPLE",
        "SecretAccessKey": SECRET,
        "Token": TOKEN_VALUE,
        "Expiration": "2026-01-01T06:00:00Z",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def fetcher_for(endpoint: str, **settings: object) -> RoleCredentialsFetcher:
    config = IMDSConfig.resolve(
        endpoint=endpoint, attempts=1, environ={}, config_file="/nonexistent", **settings
    )
    return RoleCredentialsFetcher(IMDSClient(config))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- documents nested deep, duplicate keys (malformed answers) -------------------------------------

DEEP = ("[" * 10_000 + "]" * 10_000).encode()
DEEP_OBJECT = ('{"a":' * 10_000 + "1" + "}" * 10_000).encode()


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_credentials_nested_ten_thousand_deep_are_malformed_not_a_recursion_error(
    body: bytes,
) -> None:
    with (
        scripted_imds({CREDENTIALS: body}) as imds,
        pytest.raises(MalformedResponseError, match="not JSON"),
    ):
        fetcher_for(imds.endpoint).fetch()


def test_deep_credentials_reach_boto3_as_our_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scripted_imds({CREDENTIALS: DEEP}) as imds:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint)
        session = imdscreds.provider.boto3_session(region_name="us-east-1")
        with pytest.raises(MalformedResponseError):
            session.get_credentials()


def test_deep_credentials_through_the_cli_are_one_line_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with scripted_imds({CREDENTIALS: DEEP}) as imds:
        # A generous timeout: on a loaded machine a slow token answer would add a WARNING line.
        argv = ["credentials", "--endpoint", imds.endpoint, "--timeout", "10"]
        code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("imdscreds: error: The credentials document for role 'scripted-role' ")
    assert "is not JSON (nested too deep)" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("path", ["identity", "info"])
def test_doctor_reads_a_deep_identity_document_or_iam_info_as_not_json(
    capsys: pytest.CaptureFixture[str], path: str
) -> None:
    routes: dict[str, Reply | bytes] = {
        CREDENTIALS: document().encode(),
        "/latest/dynamic/instance-identity/document": DEEP if path == "identity" else b"{}",
        "/latest/meta-data/iam/info": DEEP if path == "info" else b'{"Code":"Success"}',
    }
    with scripted_imds(routes) as imds:
        code = main(["doctor", "--json", "--offline", "--endpoint", imds.endpoint])
        out, err = capsys.readouterr()
    report = json.loads(out)
    assert code in (0, 1)
    assert "Traceback" not in err
    texts = [f"{f['summary']} {f['detail'] or ''}" for f in report["findings"]]
    assert not any("RecursionError" in text or "check itself failed" in text for text in texts)
    if path == "identity":
        identity = next(f for f in report["findings"] if f["id"] == "instance-identity")
        assert "instance-identity/document is not JSON (nested too deep)" in identity["summary"]


def test_duplicate_keys_are_malformed_so_a_later_code_cannot_override_failure() -> None:
    body = document()[:-1] + ', "Code": "Failure", "Code": "Success"}'
    with pytest.raises(MalformedResponseError, match="'Code' more than once"):
        parse_credentials(body, "role")


def test_duplicate_keys_served_by_imds_are_malformed() -> None:
    body = ('{"Code": "AssumeRoleUnauthorizedAccess", ' + document()[1:]).encode()
    with (
        scripted_imds({CREDENTIALS: body}) as imds,
        pytest.raises(MalformedResponseError, match="more than once"),
    ):
        fetcher_for(imds.endpoint).fetch()


# -- timestamps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize("field_name", ["Expiration", "LastUpdated"])
def test_timestamps_at_the_edge_of_datetime_are_malformed_not_an_overflow(
    field_name: str, value: str
) -> None:
    body = document(**{field_name: value}).encode()
    with (
        scripted_imds({CREDENTIALS: body}) as imds,
        pytest.raises(MalformedResponseError, match=field_name),
    ):
        fetcher_for(imds.endpoint).fetch()


@pytest.mark.parametrize(
    "value",
    [
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # fullwidth digits match \d
        "2026-01-01T00:00:00Z\n",  # $ matches before a trailing newline
        "2026-01-01T00:00:00+99:99",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.\u0661\u0662Z",  # Arabic-Indic digits
    ],
)
def test_timestamp_pattern_takes_ascii_digits_real_offsets_and_nothing_after(value: str) -> None:
    with pytest.raises(MalformedResponseError, match="Expiration"):
        parse_timestamp(value, "Expiration")


def test_real_offsets_still_parse() -> None:
    assert parse_timestamp("2026-01-01T05:30:00+05:30", "Expiration") == datetime(
        2026, 1, 1, tzinfo=timezone.utc
    )
    assert parse_timestamp("2026-01-01T00:00:00.123456789Z", "E").microsecond == 123456


def test_an_error_quotes_a_huge_expiration_bounded() -> None:
    with pytest.raises(MalformedResponseError) as raised:
        parse_credentials(document(Expiration="\x1b" + "9" * 100_000), "role")
    assert len(str(raised.value)) < 600
    assert "\x1b" not in str(raised.value)
    assert "100001 characters" in str(raised.value)


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 01 Dec 99999999999999999999 00:00:00 GMT",
        "Tue, 01 Dec 2026 99:99:99 GMT",
        "Tue, 01 Dec 2026 00:00:00 +9999999999999999",
        "\x00",
    ],
)
def test_an_unusable_date_header_is_none(value: str) -> None:
    assert parse_http_date(value) is None


def test_a_date_header_with_a_twenty_digit_year_does_not_break_a_fetch() -> None:
    with scripted_imds({CREDENTIALS: document().encode()}) as imds:
        imds.date = "Tue, 01 Dec 99999999999999999999 00:00:00 GMT"
        client = fetcher_for(imds.endpoint).client
        response = client.get(CREDENTIALS)
    assert response.date is None


# -- tokens and secrets that cannot be sent as header values --------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"tok\r\nX-Injected: 1", b"tok\nen", b"tok\x00en", b"t\xc3\xa9k", b"tok en", b"tok\ten"],
    ids=["crlf", "lf", "nul", "non-ascii", "space", "tab"],
)
def test_a_token_that_cannot_be_a_header_value_is_a_token_error_with_a_hint(body: bytes) -> None:
    with scripted_imds({TOKEN: body, CREDENTIALS: document().encode()}) as imds:
        with pytest.raises(TokenError) as raised:
            fetcher_for(imds.endpoint).fetch()
        assert imds.seen == [("PUT", TOKEN)]  # no GET ever carried it
    assert raised.value.hint
    assert body.decode("utf-8", "replace").strip() not in str(raised.value)


@pytest.mark.parametrize("field_name", ["Token", "SecretAccessKey", "AccessKeyId"])
@pytest.mark.parametrize("bad", ["\r\nX-Injected: 1", "\n", "\x00", " ", "é", "\x7f"], ids=repr)
def test_a_credential_that_cannot_be_a_header_value_is_rejected_without_quoting_it(
    fake_imds: FakeIMDS, field_name: str, bad: str
) -> None:
    values = {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": SECRET, "Token": TOKEN_VALUE}
    values[field_name] = values[field_name][:8] + bad + values[field_name][8:]
    fake_imds.serve_credentials(
        values["AccessKeyId"],
        values["SecretAccessKey"],
        values["Token"],
        datetime.now(timezone.utc) + timedelta(hours=6),
    )
    with pytest.raises(MalformedResponseError, match=field_name) as raised:
        fetcher_for(fake_imds.endpoint).fetch()
    shown = str(raised.value) + repr(raised.value)
    for secret in (values["SecretAccessKey"], values["Token"], SECRET, TOKEN_VALUE):
        for piece in (secret, secret[:8], secret[8:]):
            assert piece not in shown


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_doctor_never_shows_a_token_that_botocore_would_quote(
    fake_imds: FakeIMDS,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    unreachable_endpoint: str,
    as_json: bool,
) -> None:
    # STS and IAM point at a closed loopback port: the doctor may try them, never reach out.
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", unreachable_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", unreachable_endpoint)
    token = TOKEN_VALUE + "\r\nX-Injected: 1"
    fake_imds.serve_credentials(
        "ASIAEXAMPLE", SECRET, token, datetime.now(timezone.utc) + timedelta(hours=6)
    )
    argv = ["doctor", "--endpoint", fake_imds.endpoint] + (["--json"] if as_json else [])
    code, out, err = run_cli(capsys, *argv)
    assert code == 1
    for piece in (TOKEN_VALUE, SECRET, TOKEN_VALUE[:12], SECRET[:12]):
        assert piece not in out
        assert piece not in err
    assert "Token" in out
    assert "header" in out


# -- text from outside reaches a terminal printable -----------------------------------------------


def test_an_imds_message_with_escape_sequences_reaches_the_terminal_printable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = "EC2 cannot assume the role \x1b]0;owned\x07\x1b[2J\x9b1m. Please see documentation."
    body = json.dumps({"Code": "AssumeRoleUnauthorizedAccess", "Message": message}).encode()
    with scripted_imds({CREDENTIALS: body}) as imds:
        code, _out, err = run_cli(capsys, "credentials", "--endpoint", imds.endpoint)
    assert code == 1
    assert err.rstrip("\n").isprintable()
    assert "\\x1b]0;owned\\x07" in err


def test_doctor_json_escapes_what_json_itself_leaves_raw(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = "Instance Profile does not contain a role \x9b31m\x7f\u2028 or the role is invalid."
    info = json.dumps({"Code": "InvalidInstanceProfile", "Message": message}).encode()
    with scripted_imds({CREDENTIALS: b"{}", "/latest/meta-data/iam/info": info}) as imds:
        main(["doctor", "--json", "--offline", "--endpoint", imds.endpoint])
        out, _ = capsys.readouterr()
    assert out.replace("\n", "").isprintable()
    finding = next(f for f in json.loads(out)["findings"] if f["id"] == "profile-without-role")
    assert message in finding["detail"]  # the same text for a parser


def test_an_imds_code_is_quoted_bounded_and_printable() -> None:
    with pytest.raises(IMDSCodeError) as raised:
        parse_credentials(json.dumps({"Code": "\x1b[31m" + "X" * 50_000}), "role")
    assert len(str(raised.value)) < 1000
    assert str(raised.value).isprintable()


def test_every_error_message_is_printable_however_it_was_built() -> None:
    error = IMDSCredsError("IMDS said \x1b[2J\x07", hint="then \x00")
    assert str(error).isprintable()
    assert error.message.isprintable()
    assert error.hint.isprintable()


# -- role names ------------------------------------------------------------------------------------

BAD_ROLES = ["..", ".", "role?x=1", "role#frag", "%2e%2e", "a/b", "x" * 65, "rôle", "role\x1b"]


@pytest.mark.parametrize("role", BAD_ROLES, ids=repr)
def test_a_listed_role_name_that_is_no_iam_role_name_is_an_error_and_never_requested(
    fake_imds: FakeIMDS, role: str
) -> None:
    fake_imds.role_name = role
    with pytest.raises(MalformedResponseError, match="role name"):
        fetcher_for(fake_imds.endpoint).fetch()
    paths = [path for _, _, path, _ in fake_imds.log]
    assert paths == ["/latest/api/token", LISTING]


@pytest.mark.parametrize("role", BAD_ROLES, ids=repr)
def test_a_configured_role_name_that_is_no_iam_role_name_is_a_config_error(
    tmp_path: Path, role: str
) -> None:
    with pytest.raises(ConfigError, match="AWS_EC2_INSTANCE_PROFILE_NAME"):
        IMDSConfig.resolve(
            environ={"AWS_EC2_INSTANCE_PROFILE_NAME": role}, config_file=tmp_path / "absent"
        )
    config_file = tmp_path / "config"
    config_file.write_text(f"[default]\nec2_instance_profile_name = {role}\n")
    with pytest.raises(ConfigError, match="ec2_instance_profile_name"):
        IMDSConfig.resolve(environ={}, config_file=config_file)


@pytest.mark.parametrize("role", BAD_ROLES, ids=repr)
def test_an_explicit_role_name_argument_is_checked_too(fake_imds: FakeIMDS, role: str) -> None:
    client = fetcher_for(fake_imds.endpoint).client
    with pytest.raises(ConfigError, match="role_name"):
        RoleCredentialsFetcher(client, role_name=role)
    assert fake_imds.log == []


def test_a_role_name_on_the_command_line_is_checked_too(
    capsys: pytest.CaptureFixture[str], fake_imds: FakeIMDS
) -> None:
    argv = ["credentials", "--endpoint", fake_imds.endpoint, "--role-name", ".."]
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert "a path step" in err
    assert fake_imds.log == []


def test_a_listing_answered_with_a_credentials_document_is_not_quoted() -> None:
    # A metadata proxy that serves one document at every path: the listing holds the secret.
    with (
        scripted_imds({LISTING: document().encode()}) as imds,
        pytest.raises(MalformedResponseError, match="role name") as raised,
    ):
        fetcher_for(imds.endpoint).fetch()
    for secret in (SECRET, TOKEN_VALUE, SECRET[:12], TOKEN_VALUE[:12]):
        assert secret not in str(raised.value)


def test_a_timeout_beyond_any_float_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        IMDSConfig.resolve(timeout=10**400, environ={}, config_file=tmp_path / "absent")


def test_a_valid_role_name_with_every_allowed_character_is_requested_as_is(
    fake_imds: FakeIMDS,
) -> None:
    fake_imds.role_name = "Ab9+=,.@_-" + "x" * 54
    credentials = fetcher_for(fake_imds.endpoint).fetch()
    assert credentials.role_name == fake_imds.role_name
    assert fake_imds.log[-1][2] == LISTING + fake_imds.role_name


def test_scripted_imds_answers_what_it_is_given() -> None:
    with scripted_imds({CREDENTIALS: document().encode()}) as imds:
        credentials = fetcher_for(imds.endpoint).fetch()
    assert credentials.secret_access_key == SECRET
    assert imds.seen == [("PUT", TOKEN), ("GET", LISTING), ("GET", CREDENTIALS)]
