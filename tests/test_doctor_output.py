"""The doctor's output: text marks, colour rules, the JSON contract, no secrets, speed, the demo."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from doctor_support import run_doctor_cli, secrets_of

from imdscreds.cli import main
from imdscreds.doctor import CHECK_IDS, Finding, Report, render_text, run_doctor
from imdscreds.doctor.aws import trust_allows_ec2
from imdscreds.doctor.render import can_encode_marks, use_color
from imdscreds.testing import SCENARIOS, FakeIMDS

MakeIMDS = Callable[..., FakeIMDS]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def offline_report(imds: FakeIMDS, **kwargs: object) -> Report:
    return run_doctor(
        environ={},
        config_file=os.devnull,
        endpoint=imds.endpoint,
        offline=True,
        **kwargs,  # type: ignore[arg-type]
    )


# -- text ---------------------------------------------------------------------------------------


def test_text_marks_every_check_and_puts_the_fix_under_the_failure(
    capsys: pytest.CaptureFixture[str], fake_imds: FakeIMDS
) -> None:
    fake_imds.scenario = "trust-policy"
    code = main(["doctor", "--offline", "--endpoint", fake_imds.endpoint])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    marked = [line for line in lines if line[:2] in ("✓ ", "! ", "✗ ", "- ")]
    assert [line.split()[1] for line in marked] == list(CHECK_IDS)
    failure = next(i for i, line in enumerate(lines) if line.startswith("✗ trust-policy"))
    following = [line.strip() for line in lines[failure + 1 :]]
    fix = following.index("Fix:")
    assert all(
        line[:2] not in ("✓ ", "! ", "✗ ", "- ") for line in lines[failure + 1 : failure + 1 + fix]
    )
    assert '"Service": "ec2.amazonaws.com"' in out
    assert lines[-1].startswith("Verdict: 1 check failed; start with trust-policy")
    assert "\x1b[" not in out  # captured output is no terminal: no colour


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    assert use_color(Terminal(), {}) is True
    assert use_color(Terminal(), {"NO_COLOR": "1"}) is False
    assert use_color(Terminal(), {"TERM": "dumb"}) is False
    assert use_color(io.StringIO(), {}) is False


def test_colour_paints_the_marks(fake_imds: FakeIMDS) -> None:
    text = render_text(offline_report(fake_imds), color=True)
    assert "\x1b[32m✓\x1b[0m sdk-disabled" in text
    assert "\x1b[33m!\x1b[0m imds-v1-enabled" in text


def test_ascii_fallback_when_the_output_cannot_encode_the_marks(fake_imds: FakeIMDS) -> None:
    ascii_stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert can_encode_marks(ascii_stream) is False
    assert can_encode_marks(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")) is True
    fake_imds.scenario = "no-profile"
    text = render_text(offline_report(fake_imds), unicode=False)
    text.encode("ascii")
    assert "PASS sdk-disabled" in text
    assert "FAIL no-instance-profile" in text
    assert "SKIP sts-identity" in text


def test_control_characters_from_imds_are_shown_escaped(fake_imds: FakeIMDS) -> None:
    report = offline_report(fake_imds)
    hostile = Finding("trust-policy", "fail", "bad \x1b[2J news", "detail \x07", "fix")
    findings = tuple(hostile if f.id == "trust-policy" else f for f in report.findings)
    text = render_text(Report(findings, 0.1, report.instance, report.role))
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "bad \\x1b[2J news" in text


# -- JSON ---------------------------------------------------------------------------------------


def test_json_document_follows_schema_version_1(
    capsys: pytest.CaptureFixture[str], fake_imds: FakeIMDS
) -> None:
    run = run_doctor_cli(capsys, "--offline", "--endpoint", fake_imds.endpoint)
    report = run.report
    assert set(report) == {"version", "ok", "duration_s", "instance", "role", "findings"}
    assert report["version"] == 1
    assert isinstance(report["duration_s"], float)
    assert set(report["instance"]) == {
        "imds_endpoint",
        "imds_endpoint_source",
        "imds_version",
        "instance_id",
        "instance_type",
        "region",
        "availability_zone",
        "account_id",
    }
    assert set(report["role"]) == {
        "name",
        "instance_profile_arn",
        "arn",
        "account_id",
        "credentials_endpoint",
        "access_key_id",
        "expiration",
        "last_updated",
        "trust_allows_ec2",
        "attached_policies",
        "inline_policies",
    }
    for finding in report["findings"]:
        assert set(finding) == {"id", "status", "summary", "detail", "fix"}
        assert finding["status"] in ("pass", "warn", "fail", "skip")


def test_report_rejects_missing_or_reordered_ids(fake_imds: FakeIMDS) -> None:
    findings = offline_report(fake_imds).findings
    with pytest.raises(ValueError, match="every check once"):
        Report(findings[1:], 0.0)
    with pytest.raises(ValueError, match="every check once"):
        Report((findings[1], findings[0], *findings[2:]), 0.0)
    with pytest.raises(ValueError, match="unknown check id"):
        Finding("no-such-check", "pass", "x")


# -- no secret, in any scenario, text or JSON -----------------------------------------------------


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s not in ("blackhole", "hop-limit")])
@pytest.mark.parametrize("as_json", [False, True])
def test_no_secret_in_doctor_output_or_logs(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    fake_imds: FakeIMDS,
    scenario: str,
    as_json: bool,
) -> None:
    fake_imds.scenario = scenario
    args = ["-vv", "doctor", "--offline", "--endpoint", fake_imds.endpoint]
    with caplog.at_level(logging.DEBUG):
        main([*args, "--json"] if as_json else args)
    out, err = capsys.readouterr()
    for secret in secrets_of(fake_imds):
        assert secret not in out
        assert secret not in err
        assert secret not in caplog.text


# -- speed --------------------------------------------------------------------------------------


def test_black_hole_doctor_ends_quickly_in_a_real_process(fake_imds_factory: MakeIMDS) -> None:
    hole = fake_imds_factory(scenario="blackhole")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "imdscreds", "doctor", "--json", "--endpoint", hole.endpoint],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    statuses = {f["id"]: f["status"] for f in report["findings"]}
    assert statuses["imds-reachable"] == "fail"
    assert statuses["sts-identity"] == "skip"
    assert "waiting for IMDS" in result.stderr
    assert elapsed < 8, f"doctor against a black hole took {elapsed:.1f} s"


def test_slow_steps_report_what_they_wait_on(fake_imds: FakeIMDS) -> None:
    fake_imds.latency = 0.15
    heard: list[str] = []
    offline_report(fake_imds, progress=heard.append, slow_after=0.05)
    assert any(f"waiting for IMDS at {fake_imds.endpoint}" in line for line in heard)
    assert any("the role's credentials" in line for line in heard)


# -- trust policy reading -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]},
                        "Action": ["sts:AssumeRole", "sts:TagSession"],
                    }
                ]
            },
            True,
        ),
        (
            {
                "Statement": {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                }
            },
            False,
        ),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": "sts:*"},
                    {
                        "Effect": "Deny",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "*",
                    },
                ]
            },
            False,
        ),
        ("not a policy", None),
    ],
)
def test_trust_policy_reading(document: object, expected: bool | None) -> None:
    assert trust_allows_ec2(document) is expected


# -- demo ---------------------------------------------------------------------------------------


def test_demo_runs_the_doctor_against_a_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "profile-without-role"]) == 1
    out = capsys.readouterr().out
    assert "A fake IMDS plays 'profile-without-role'" in out
    assert "✗ profile-without-role" in out
    assert "Verdict: 1 check failed" in out


def test_demo_json_for_a_healthy_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "v1-disabled", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True


def test_demo_lists_scenarios_and_rejects_unknown_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(scenario in listed for scenario in SCENARIOS)
    assert main(["demo", "--scenario", "no-such-thing"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'no-such-thing'" in err
    assert "trust-policy" in err


def test_plain_demo_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "Cold fetch" in capsys.readouterr().out
