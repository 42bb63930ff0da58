"""Doctor-fetch agreement: the doctor and ``imdscreds credentials`` agree, whatever IMDS does.

Every FakeIMDS scenario, every fault FakeIMDS injects (``fail_next`` for each status on each path
family, persistent and once, ``latency``, ``throttle``, ``date_offset``, and its settings
``v1_allowed``, ``extended``, ``max_token_ttl``), a scripted server that answers every request with
a status IMDS never sends, and scripted servers that trickle: each run through both commands
in-process, each against a fresh server armed the same way. They agree when:

- the doctor exits 0 exactly when ``imdscreds credentials`` does, and then it fetched credentials
  itself (``role.access_key_id``);
- when both fail, the doctor's first failing IMDS finding quotes the very error the command printed
  (``FETCH_FAILS`` + message), or, where nothing answered and the doctor did not fetch, both say so
  for the same endpoint;
- the only exceptions are checks about something a fetch does not judge, named per case: the
  credentials fetched are already expired (``credentials-expiry``; the command prints them, botocore
  then refuses them), or the local clock is off (``clock-skew``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from doctor_support import DoctorRun, run_doctor_cli, secrets_of
from scripted_server import ScriptedServer, Status, Trickle

from imdscreds.cli import main
from imdscreds.doctor.findings import FETCH_CHECKS
from imdscreds.doctor.verdict import FETCH_FAILS
from imdscreds.imds import TOKEN_PATH
from imdscreds.testing import SCENARIOS, FakeIMDS

MakeIMDS = Callable[..., FakeIMDS]
TIMEOUT = "0.5"
CREDENTIALS_PATHS = "/latest/meta-data/iam/security-credentials"  # legacy and extended
# Every status class a box in IMDS's place may answer with: IMDS's own 4xx (400, 401, 403, 404,
# 405), the retried ones (429, 5xx), and ones IMDS never sends.
FAULT_STATUSES = (400, 401, 402, 403, 404, 405, 408, 410, 418, 429, 451, 500, 502, 503, 504, 599)
# The statuses of issue's fault list for a server that answers only them, 3xx included (which
# FakeIMDS cannot inject: fail_next takes errors only).
SCRIPTED_STATUSES = (301, 307, 400, 401, 402, 405, 410, 418, 451, 599)
PERSISTENT = 10_000


@dataclass(frozen=True)
class Case:
    """A FakeIMDS scenario with faults armed the same way before each of the two runs."""

    scenario: str = "healthy"
    faults: tuple[tuple[int, int, str], ...] = ()  # fail_next(status, count, path_prefix)
    attributes: dict[str, object] = field(default_factory=dict)  # latency, throttle, v1_allowed ...
    beyond_fetch: str | None = None  # the one check the doctor fails that the fetch does not judge

    def start(self, make: MakeIMDS) -> FakeIMDS:
        imds = make(scenario=self.scenario)
        for status, count, prefix in self.faults:
            imds.fail_next(status, count, path_prefix=prefix)
        for name, value in self.attributes.items():
            setattr(imds, name, value)
        return imds


def _cases() -> dict[str, Case]:
    cases = {
        f"scenario-{name}": Case(
            scenario=name, beyond_fetch="credentials-expiry" if name == "expired" else None
        )
        for name in SCENARIOS
    }
    for status in FAULT_STATUSES:
        for where, prefix in (("all", ""), ("token", TOKEN_PATH), ("creds", CREDENTIALS_PATHS)):
            cases[f"always-{status}-{where}"] = Case(faults=((status, PERSISTENT, prefix),))
        cases[f"once-{status}-creds"] = Case(faults=((status, 1, CREDENTIALS_PATHS),))
    # One-off token faults the client retries. A one-off 4xx on the token is not comparable: it
    # reaches whichever token PUT comes first, and the doctor's probe sends one before its fetch.
    for status in (429, 500, 503):
        cases[f"once-{status}-token"] = Case(faults=((status, 1, TOKEN_PATH),))
    cases["latency-under-timeout"] = Case(attributes={"latency": 0.05})
    cases["latency-over-timeout"] = Case(attributes={"latency": 0.8})
    cases["throttle-5-per-second"] = Case(attributes={"throttle": 5})
    cases["date-10-min-ahead"] = Case(attributes={"date_offset": 600}, beyond_fetch="clock-skew")
    cases["tokens-required"] = Case(attributes={"v1_allowed": False})
    cases["tokens-required-behind-a-hop-limit"] = Case(
        scenario="hop-limit", attributes={"v1_allowed": False}
    )
    cases["no-extended-paths"] = Case(attributes={"extended": False})
    # The library asks for a 6 h token; this IMDS grants at most 1 h (400), the probe's 60 s passes.
    cases["token-ttl-capped-at-1-h"] = Case(attributes={"max_token_ttl": 3600})
    return cases


CASES = _cases()


@dataclass(frozen=True)
class CredentialsRun:
    code: int
    stderr: str


def credentials(capsys: pytest.CaptureFixture[str], endpoint: str) -> CredentialsRun:
    code = main(["credentials", "--endpoint", endpoint, "--timeout", TIMEOUT])
    _, err = capsys.readouterr()
    return CredentialsRun(code, err.replace(endpoint, "ENDPOINT"))


def doctor(capsys: pytest.CaptureFixture[str], endpoint: str, secrets: list[str]) -> DoctorRun:
    return run_doctor_cli(
        capsys, "--offline", "--endpoint", endpoint, "--timeout", TIMEOUT, secrets=secrets
    )


def first_fetch_failure(run: DoctorRun) -> dict[str, str]:
    return next(
        f for f in run.report["findings"] if f["id"] in FETCH_CHECKS and f["status"] == "fail"
    )


def assert_agree(run: DoctorRun, endpoint: str, caller: CredentialsRun, beyond: str | None) -> None:
    failed = [f["id"] for f in run.report["findings"] if f["status"] == "fail"]
    if caller.code == 0:
        assert run.report["role"]["access_key_id"] is not None  # the doctor fetched them too
        assert failed == ([beyond] if beyond else []), run.report["findings"]
        return
    assert caller.code == 1, caller.stderr
    assert run.code == 1, run.report["findings"]
    assert run.report["role"]["access_key_id"] is None
    finding = first_fetch_failure(run)
    quoted = [
        line[len(FETCH_FAILS) :].replace(endpoint, "ENDPOINT")
        for line in (finding["detail"] or "").splitlines()
        if line.startswith(FETCH_FAILS)
    ]
    if quoted:
        assert caller.stderr.startswith(f"imdscreds: error: {quoted[0]}"), (quoted, caller.stderr)
        return
    # Nothing answered the doctor's first requests, so it did not fetch: both name the silence.
    assert finding["id"] == "imds-reachable", finding
    assert "answer" in finding["summary"]
    assert "answer" in caller.stderr
    assert "ENDPOINT" in caller.stderr


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_doctor_and_credentials_agree_on_every_fake_imds_scenario_and_fault(
    capsys: pytest.CaptureFixture[str], fake_imds_factory: MakeIMDS, case: Case
) -> None:
    caller_imds = case.start(fake_imds_factory)
    caller = credentials(capsys, caller_imds.endpoint)
    doctor_imds = case.start(fake_imds_factory)
    run = doctor(capsys, doctor_imds.endpoint, secrets_of(doctor_imds))
    assert_agree(run, doctor_imds.endpoint, caller, case.beyond_fetch)


@pytest.mark.parametrize("status", SCRIPTED_STATUSES)
def test_doctor_and_credentials_agree_on_a_server_that_answers_only_one_status(
    capsys: pytest.CaptureFixture[str], status: int
) -> None:
    with ScriptedServer(lambda method, path: Status(status)) as server:
        endpoint = server.endpoint
        caller = credentials(capsys, endpoint)
        run = doctor(capsys, endpoint, [])
    assert caller.code == 1
    assert_agree(run, endpoint, caller, None)
    finding = first_fetch_failure(run)
    assert finding["id"] == "imds-reachable"
    assert str(status) in finding["summary"]


def _trickle_role(method: str, path: str) -> Status | Trickle:
    if path == TOKEN_PATH:
        return Status(200, b"a-token")
    if path.startswith("/latest/meta-data/iam/"):
        return Trickle(gap=float(TIMEOUT) * 0.9)
    return Status(200, b"i-0123456789abcdef0")


TRICKLES = {
    "trickle-everything": lambda method, path: Trickle(gap=float(TIMEOUT) * 0.9),
    "trickle-the-role": _trickle_role,
}


@pytest.mark.parametrize("script", TRICKLES.values(), ids=TRICKLES.keys())
def test_doctor_and_credentials_agree_on_a_server_that_trickles_its_answers(
    capsys: pytest.CaptureFixture[str], script: Callable[[str, str], Status | Trickle]
) -> None:
    with ScriptedServer(script) as server:
        endpoint = server.endpoint
        caller = credentials(capsys, endpoint)
        run = doctor(capsys, endpoint, [])
    assert caller.code == 1
    assert_agree(run, endpoint, caller, None)
