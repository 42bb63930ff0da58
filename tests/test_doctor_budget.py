"""The doctor ends within its IMDS budget, ``(attempts + 4) x timeout``, whatever IMDS does.

Against scripted servers on loopback: one that trickles every answer a byte at a time (no read ever
waits a whole timeout), one that trickles only the role's paths (the fetch runs to its own
deadline), and one that answers everything, slowly enough that the steps after the fetch would
run past the budget: the step that finds no time left says so, and the verdict is still the
fetch's.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from doctor_support import run_doctor_cli
from scripted_server import ScriptedServer, Status, Trickle

from imdscreds.cli import main
from imdscreds.config import IMDSConfig
from imdscreds.doctor.context import imds_budget
from imdscreds.doctor.verdict import FETCH_FAILS
from imdscreds.imds import TOKEN_PATH

TIMEOUT = 0.5
ATTEMPTS = 3
BUDGET = imds_budget(IMDSConfig.resolve(timeout=TIMEOUT, attempts=ATTEMPTS, environ={}))
# What the run may take beyond the budget: the checks' own work and the threads' wake-ups.
SLACK = 0.5
ROLE = "app-role"
LISTING = "/latest/meta-data/iam/security-credentials-extended/"
README = Path(__file__).resolve().parent.parent / "README.md"


def credentials_document() -> bytes:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return json.dumps(
        {
            "Code": "Success",
            "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIAEXAMPLEBUDGET",
            "SecretAccessKey": "budget-secret-key",
            "Token": "budget-session-token",
            "Expiration": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ).encode()


def timed_doctor(capsys: pytest.CaptureFixture[str], endpoint: str) -> tuple[float, dict]:  # type: ignore[type-arg]
    started = time.monotonic()
    run = run_doctor_cli(
        capsys,
        "--offline",
        "--endpoint",
        endpoint,
        "--timeout",
        str(TIMEOUT),
        "--attempts",
        str(ATTEMPTS),
        secrets=["budget-secret-key", "budget-session-token"],
    )
    return time.monotonic() - started, run.report


def finding(report: dict, check_id: str) -> dict:  # type: ignore[type-arg]
    return next(f for f in report["findings"] if f["id"] == check_id)


def test_the_budget_is_attempts_plus_four_timeouts_as_help_and_readme_say(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert pytest.approx((ATTEMPTS + 4) * TIMEOUT) == BUDGET
    assert imds_budget(IMDSConfig.resolve(environ={})) == 7.0
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert "(attempts + 4) x timeout in all (7 s by default)" in " ".join(
        capsys.readouterr().out.split()
    )
    doctor_section = README.read_text().split("## imdscreds doctor", 1)[1].split("\n## ", 1)[0]
    assert "(attempts + 4) \u00d7 timeout** in all (7 s with the" in doctor_section


def test_a_server_trickling_every_answer_ends_the_doctor_within_its_budget(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ScriptedServer(lambda method, path: Trickle(gap=TIMEOUT * 0.9)) as server:
        endpoint = server.endpoint
        took, report = timed_doctor(capsys, endpoint)
    assert took <= BUDGET + SLACK
    reachable = finding(report, "imds-reachable")
    assert reachable["status"] == "fail"
    assert "never answers" in reachable["summary"]


def test_a_server_trickling_the_role_ends_the_fetch_at_its_deadline_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def script(method: str, path: str) -> Status | Trickle:
        if path == TOKEN_PATH:
            return Status(200, b"a-token")
        if path.startswith("/latest/meta-data/iam/"):
            return Trickle(gap=TIMEOUT * 0.9)
        return Status(200, b"i-0123456789abcdef0")

    with ScriptedServer(script) as server:
        endpoint = server.endpoint
        took, report = timed_doctor(capsys, endpoint)
    assert took <= BUDGET + SLACK
    reachable = finding(report, "imds-reachable")
    assert reachable["status"] == "fail"
    assert FETCH_FAILS + f"IMDS at {endpoint} did not answer GET {LISTING}" in (reachable["detail"])
    assert report["ok"] is False


def test_steps_that_find_no_time_left_say_so_and_the_verdict_stays_the_fetchs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every answer comes just under the timeout. The probe and the fetch (token, listing,
    # document) fit; the identity document is refused (401), so the client asks for a new token,
    # which IMDS answers 503, slowly, on every attempt: that read alone would end past the budget.
    slow = TIMEOUT * 0.9
    puts = 0
    lock = threading.Lock()

    def script(method: str, path: str) -> Status | Trickle:
        nonlocal puts
        if path == TOKEN_PATH:
            with lock:
                puts += 1
                first_two = puts <= 2  # the probe's and the fetch's
            return Status(200, b"a-token", slow) if first_two else Status(503, b"busy", slow)
        if path == LISTING:
            return Status(200, ROLE.encode(), slow)
        if path == LISTING + ROLE:
            return Status(200, credentials_document(), slow)
        return Status(401, b"", slow)

    with ScriptedServer(script) as server:
        endpoint = server.endpoint
        took, report = timed_doctor(capsys, endpoint)
    assert took <= BUDGET + SLACK
    identity = finding(report, "instance-identity")
    assert identity["status"] == "warn"
    assert f"The doctor's time for IMDS ({BUDGET:g} s" in identity["summary"]
    assert "ran out" in identity["summary"]
    # The fetch fitted whole: the role's credentials were had, as a caller would have them.
    assert report["ok"] is True
    assert report["role"]["access_key_id"] == "ASIAEXAMPLEBUDGET"
    assert finding(report, "credentials-expiry")["status"] == "pass"
