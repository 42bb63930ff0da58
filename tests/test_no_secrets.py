"""No secret key or session token in any repr, log record, exception text or CLI output."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from imdscreds.cli import main
from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentialsFetcher
from imdscreds.errors import IMDSCredsError
from imdscreds.imds import IMDSClient
from imdscreds.testing import FakeIMDS


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def secrets_of(imds: FakeIMDS) -> list[str]:
    found = [c.secret_access_key for c in imds.issued_credentials]
    found += [c.token for c in imds.issued_credentials]
    assert found, "the fake issued credentials"
    return found


SCENARIOS = ["healthy", "trust-policy", "profile-not-found", "malformed", "expired"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_secret_in_reprs_logs_or_errors(
    fake_imds: FakeIMDS, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake_imds.scenario = scenario
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        client = IMDSClient(IMDSConfig.resolve(endpoint=fake_imds.endpoint))
        fetcher = RoleCredentialsFetcher(client)
        try:
            credentials = fetcher.fetch()
        except IMDSCredsError as exc:
            seen += [str(exc), repr(exc), exc.hint, exc.message]
        else:
            seen += [repr(credentials), str(credentials)]
        seen += [repr(client), repr(fetcher), repr(client.config)]
        fake_imds.scenario = "healthy"
        seen.append(repr(fetcher.fetch()))
    seen += [record.getMessage() for record in caplog.records]
    seen.append(caplog.text)
    text = "\n".join(seen)
    for secret in secrets_of(fake_imds):
        assert secret not in text


@pytest.mark.parametrize("fmt", ["credential-process", "env", "json"])
def test_no_secret_in_cli_output_on_a_terminal(
    fake_imds: FakeIMDS,
    fmt: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["-vv", "credentials", "--format", fmt, "--endpoint", fake_imds.endpoint]) == 0
    output = terminal.getvalue() + capsys.readouterr().err
    assert fake_imds.current_credentials.access_key_id in output
    for secret in secrets_of(fake_imds):
        assert secret not in output


def test_no_secret_in_cli_errors(fake_imds: FakeIMDS, capsys: pytest.CaptureFixture[str]) -> None:
    fake_imds.scenario = "malformed"
    assert main(["-vv", "credentials", "--endpoint", fake_imds.endpoint]) == 1
    fake_imds.scenario = "healthy"
    fake_imds.fail_next(500, count=10)
    assert main(["-vv", "credentials", "--endpoint", fake_imds.endpoint]) == 1
    out, err = capsys.readouterr()
    for secret in secrets_of(fake_imds):
        assert secret not in out + err
