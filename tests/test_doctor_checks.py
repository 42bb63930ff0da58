"""Each check's id, status and exit code, from a real situation: FakeIMDS, env vars, config files.

Everything here runs ``imdscreds doctor --json --offline`` in-process; the STS and IAM checks are
in test_doctor_aws.py, against moto's server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from doctor_support import DoctorRun, run_doctor_cli, secrets_of

from imdscreds.cli import main
from imdscreds.testing import FakeIMDS

MakeIMDS = Callable[..., FakeIMDS]
# The IMDS checks a healthy instance (IMDSv2 required) passes.
IMDS_IDS = (
    "imds-reachable",
    "imds-disabled",
    "hop-limit",
    "imds-v1-enabled",
    "instance-identity",
    "no-instance-profile",
    "instance-profile-not-found",
    "profile-without-role",
    "trust-policy",
    "credentials-expiry",
    "clock-skew",
)


@pytest.fixture
def imds(fake_imds_factory: MakeIMDS, monkeypatch: pytest.MonkeyPatch) -> FakeIMDS:
    """A healthy instance that requires IMDSv2, and the environment pointing at it."""
    fake = fake_imds_factory(v1_allowed=False)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake.endpoint)
    return fake


def doctor(capsys: pytest.CaptureFixture[str], imds: FakeIMDS, *args: str) -> DoctorRun:
    return run_doctor_cli(capsys, "--offline", "--timeout", "0.5", *args, secrets=secrets_of(imds))


def test_healthy_instance_offline_passes_every_local_check(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    run = doctor(capsys, imds)
    assert run.code == 0
    assert run.report["ok"] is True
    statuses = run.statuses()
    assert {statuses[i] for i in IMDS_IDS} == {"pass"}
    assert {statuses[i] for i in ("sdk-disabled", "endpoint-config", "proxy-env")} == {"pass"}
    assert statuses["credential-shadowing"] == "pass"
    for check_id in ("sts-identity", "no-attached-policies", "policies-unreadable"):
        assert statuses[check_id] == "skip"
        assert "--offline" in run.finding(check_id)["summary"]
    assert run.report["instance"]["instance_id"] == "i-0123456789abcdef0"
    assert run.report["instance"]["imds_version"] == "v2"
    assert run.report["role"]["name"] == imds.role_name
    assert run.report["role"]["credentials_endpoint"] == "extended"


# -- environment ------------------------------------------------------------------------------


def test_sdk_disabled_by_env_fails_but_imds_is_still_examined(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    run = doctor(capsys, imds)
    assert run.code == 1
    assert run.status("sdk-disabled") == "fail"
    assert "AWS_EC2_METADATA_DISABLED" in run.finding("sdk-disabled")["summary"]
    assert "Unset AWS_EC2_METADATA_DISABLED" in run.finding("sdk-disabled")["fix"]
    assert run.status("credentials-expiry") == "pass"


def test_sdk_disabled_by_config_file_names_the_profile(
    capsys: pytest.CaptureFixture[str],
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\ndisable_ec2_metadata = true\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    run = doctor(capsys, imds)
    assert (run.code, run.status("sdk-disabled")) == (1, "fail")
    assert str(config) in run.finding("sdk-disabled")["fix"]


def test_invalid_setting_in_config_file_fails_endpoint_config_and_skips_imds(
    capsys: pytest.CaptureFixture[str],
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nec2_metadata_service_endpoint_mode = IPv5\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    run = doctor(capsys, imds)
    assert (run.code, run.status("endpoint-config")) == (1, "fail")
    assert "IPv5" in run.finding("endpoint-config")["detail"]
    assert run.status("sdk-disabled") == "skip"
    assert {run.status(i) for i in IMDS_IDS} == {"skip"}
    assert imds.count() == 0


def test_endpoint_config_passes_and_shows_where_each_setting_came_from(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    run = doctor(capsys, imds)
    finding = run.finding("endpoint-config")
    assert finding["status"] == "pass"
    assert "env AWS_EC2_METADATA_SERVICE_ENDPOINT" in finding["summary"]
    assert "timeout = 0.5 (argument)" in finding["detail"]


def test_invalid_endpoint_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--endpoint", "ftp://169.254.169.254"]) == 2
    assert "scheme" in capsys.readouterr().err


def test_proxy_without_no_proxy_warns_and_hides_the_proxy_password(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://alice:hunter2@proxy.internal:3128")
    run = run_doctor_cli(capsys, "--offline", secrets=[*secrets_of(imds), "hunter2"])
    assert (run.code, run.status("proxy-env")) == (0, "warn")
    assert "HTTP_PROXY=http://***@proxy.internal:3128" in run.finding("proxy-env")["summary"]
    assert "NO_PROXY=169.254.169.254" in run.finding("proxy-env")["fix"]
    # imdscreds itself ignores the proxy: the rest still works.
    assert run.status("credentials-expiry") == "pass"


def test_proxy_with_no_proxy_for_the_endpoint_passes(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    run = doctor(capsys, imds)
    assert run.status("proxy-env") == "pass"


def test_access_keys_in_env_shadow_the_instance_role(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value-not-to-print")
    run = run_doctor_cli(
        capsys, "--offline", secrets=[*secrets_of(imds), "env-secret-value-not-to-print"]
    )
    assert (run.code, run.status("credential-shadowing")) == (0, "warn")
    assert "AKIAENVIRONMENT00001" in run.finding("credential-shadowing")["summary"]


def test_keys_in_the_shared_credentials_file_shadow_the_instance_role(
    capsys: pytest.CaptureFixture[str],
    imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = AKIAFILE000000000001\naws_secret_access_key = s3cr3t-in-file\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    run = run_doctor_cli(capsys, "--offline", secrets=[*secrets_of(imds), "s3cr3t-in-file"])
    assert run.status("credential-shadowing") == "warn"
    assert str(credentials) in run.finding("credential-shadowing")["detail"]


def test_aws_profile_naming_a_missing_profile_breaks_the_chain(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    run = doctor(capsys, imds)
    assert (run.code, run.status("credential-shadowing")) == (1, "fail")
    assert "ProfileNotFound" in run.finding("credential-shadowing")["detail"]


def test_container_credentials_shadow_the_instance_role(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")
    run = doctor(capsys, imds)
    assert run.status("credential-shadowing") == "warn"


# -- IMDS ---------------------------------------------------------------------------------------


def test_no_imds_fails_reachable_at_once_and_skips_the_rest(
    capsys: pytest.CaptureFixture[str], unreachable_endpoint: str
) -> None:
    run = run_doctor_cli(capsys, "--offline", "--endpoint", unreachable_endpoint)
    assert (run.code, run.status("imds-reachable")) == (1, "fail")
    assert "connection refused" in run.finding("imds-reachable")["summary"]
    assert {run.status(i) for i in IMDS_IDS[1:]} == {"skip"}
    assert run.report["duration_s"] < 2


@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        ("outage", "never answers"),
        ("server-error", "only with errors (500)"),
        ("throttled", "only with errors (429)"),
    ],
)
def test_imds_that_answers_nothing_useful_fails_reachable(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, scenario: str, words: str
) -> None:
    imds.scenario = scenario
    run = doctor(capsys, imds)
    assert (run.code, run.status("imds-reachable")) == (1, "fail")
    assert words in run.finding("imds-reachable")["summary"]
    assert run.status("credentials-expiry") == "skip"


def test_a_fault_only_the_probe_saw_is_a_warning_when_the_fetch_works(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    # The probe's token PUT and token-less GET get the two 403s; the fetch after them works.
    imds.fail_next(403, 2)
    run = doctor(capsys, imds)
    assert (run.code, run.status("imds-disabled")) == (0, "warn")
    assert "fetched through the same settings" in run.finding("imds-disabled")["detail"]
    assert run.status("credentials-expiry") == "pass"


def test_disabled_metadata_endpoint_fails_with_the_http_endpoint_fix(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.scenario = "imds-disabled"
    run = doctor(capsys, imds)
    assert (run.code, run.status("imds-reachable"), run.status("imds-disabled")) == (
        1,
        "pass",
        "fail",
    )
    fix = run.finding("imds-disabled")["fix"]
    assert "--http-endpoint enabled" in fix
    assert 'http_endpoint = "enabled"' in fix
    assert "Modify instance metadata options" in fix
    assert run.status("no-instance-profile") == "skip"


def test_hop_limit_with_v1_fallback_warns(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.scenario = "hop-limit"
    imds.v1_allowed = True
    run = run_doctor_cli(capsys, "--offline", "--timeout", "0.2", secrets=secrets_of(imds))
    assert (run.code, run.status("hop-limit")) == (0, "warn")
    assert "http_put_response_hop_limit = 2" in run.finding("hop-limit")["fix"]
    assert run.status("imds-v1-enabled") == "warn"
    # The doctor still reaches the role through IMDSv1.
    assert run.status("credentials-expiry") == "pass"
    assert run.report["instance"]["imds_version"] == "v1"


def test_hop_limit_when_the_sdks_may_not_fall_back_fails(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    imds.scenario = "hop-limit"
    imds.v1_allowed = True
    monkeypatch.setenv("AWS_EC2_METADATA_V1_DISABLED", "true")
    run = run_doctor_cli(capsys, "--offline", "--timeout", "0.2", secrets=secrets_of(imds))
    assert (run.code, run.status("hop-limit")) == (1, "fail")
    assert "AWS_EC2_METADATA_V1_DISABLED" in run.finding("hop-limit")["detail"]


def test_hop_limit_with_tokens_required_fails_and_stops(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.scenario = "hop-limit"
    run = run_doctor_cli(capsys, "--offline", "--timeout", "0.2", secrets=secrets_of(imds))
    assert (run.code, run.status("hop-limit")) == (1, "fail")
    assert "401" in run.finding("hop-limit")["detail"]
    assert run.status("imds-v1-enabled") == "pass"
    assert run.status("instance-identity") == "skip"


def test_imdsv1_enabled_warns_with_http_tokens_required(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.v1_allowed = True
    run = doctor(capsys, imds)
    assert (run.code, run.status("imds-v1-enabled")) == (0, "warn")
    fix = run.finding("imds-v1-enabled")["fix"]
    assert 'metadata_options { http_tokens = "required" }' in fix
    assert "--http-tokens required" in fix
    assert "IMDSv2: Required" in fix


def test_unreadable_identity_document_warns(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.fail_next(404, 1, path_prefix="/latest/dynamic/instance-identity")
    run = doctor(capsys, imds)
    assert (run.code, run.status("instance-identity")) == (0, "warn")
    assert run.status("credentials-expiry") == "pass"


# -- the instance profile and the role --------------------------------------------------------


def test_no_instance_profile_fails_with_the_association_fix(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.scenario = "no-profile"
    run = doctor(capsys, imds)
    assert (run.code, run.status("no-instance-profile")) == (1, "fail")
    fix = run.finding("no-instance-profile")["fix"]
    assert "aws ec2 associate-iam-instance-profile --instance-id i-0123456789abcdef0" in fix
    assert "aws_iam_instance_profile" in fix
    assert "Modify IAM role" in fix
    for check_id in ("instance-profile-not-found", "profile-without-role", "trust-policy"):
        assert run.status(check_id) == "skip"


def test_deleted_instance_profile_fails_instance_profile_not_found(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.scenario = "profile-not-found"
    run = doctor(capsys, imds)
    assert (run.status("no-instance-profile"), run.status("instance-profile-not-found")) == (
        "pass",
        "fail",
    )
    assert run.code == 1
    assert (
        "replace-iam-instance-profile-association"
        in run.finding("instance-profile-not-found")["fix"]
    )


def test_profile_without_role_fails(capsys: pytest.CaptureFixture[str], imds: FakeIMDS) -> None:
    imds.scenario = "profile-without-role"
    run = doctor(capsys, imds)
    assert (run.code, run.status("profile-without-role")) == (1, "fail")
    finding = run.finding("profile-without-role")
    assert "does not contain a role" in finding["detail"]
    assert "add-role-to-instance-profile" in finding["fix"]


def test_configured_role_name_that_imds_does_not_have_fails_profile_without_role(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    run = doctor(capsys, imds, "--role-name", "not-the-role")
    assert (run.code, run.status("profile-without-role")) == (1, "fail")
    assert "not-the-role" in run.finding("profile-without-role")["summary"]


def test_trust_policy_failure_explains_and_shows_the_minimal_policy(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS
) -> None:
    imds.scenario = "trust-policy"
    run = doctor(capsys, imds)
    assert (run.code, run.status("trust-policy")) == (1, "fail")
    finding = run.finding("trust-policy")
    assert "AssumeRoleUnauthorizedAccess" in finding["detail"]
    assert "who may assume it" in finding["detail"]
    assert '"Service": "ec2.amazonaws.com"' in finding["fix"]
    assert "assume_role_policy" in finding["fix"]
    assert "update-assume-role-policy" in finding["fix"]
    assert "next refresh" in finding["fix"]
    assert run.status("credentials-expiry") == "skip"


@pytest.mark.parametrize(
    ("scenario", "words"), [("expired", "expired"), ("malformed", "no usable credentials")]
)
def test_unusable_credentials_fail_credentials_expiry(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, scenario: str, words: str
) -> None:
    imds.scenario = scenario
    run = doctor(capsys, imds)
    assert (run.code, run.status("credentials-expiry")) == (1, "fail")
    assert words in run.finding("credentials-expiry")["summary"]


@pytest.mark.parametrize(("offset", "status", "code"), [(600, "fail", 1), (-120, "warn", 0)])
def test_clock_skew_against_imds_date_header(
    capsys: pytest.CaptureFixture[str], imds: FakeIMDS, offset: float, status: str, code: int
) -> None:
    imds.date_offset = offset
    run = doctor(capsys, imds)
    assert (run.code, run.status("clock-skew")) == (code, status)
    direction = "behind" if offset > 0 else "ahead of"
    assert f"{direction} IMDS" in run.finding("clock-skew")["summary"]
    assert "chrony" in run.finding("clock-skew")["fix"]
