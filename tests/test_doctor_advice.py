"""The doctor's advice names what is really there: the README's own recipe, the address, the file.

``imdscreds doctor`` and ``imdscreds demo`` in-process (``cli.main``), against FakeIMDS, a closed
loopback port and real config files. The advice for IMDS's own addresses (the IPv4 default and the
IPv6 mode) cannot be produced by a run here, since a test never sends a packet there: those cases
call the fix that the check prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from doctor_support import run_doctor_cli, secrets_of

from imdscreds.cli import main
from imdscreds.config import IPV4_ENDPOINT, IPV6_ENDPOINT
from imdscreds.doctor import fixes
from imdscreds.testing import FakeIMDS

# -- credential-shadowing and the README's credential_process recipe ---------------------------


def shadowing_with_profile(
    capsys: pytest.CaptureFixture[str],
    imds: FakeIMDS,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> tuple[int, dict[str, str], str]:
    """credential-shadowing with ``AWS_PROFILE=instance`` running ``command``: code, finding, JSON."""
    config.write_text(f"[profile instance]\ncredential_process = {command}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "instance")
    run = run_doctor_cli(capsys, "--offline", "--endpoint", imds.endpoint, secrets=secrets_of(imds))
    return run.code, run.finding("credential-shadowing"), json.dumps(run.report)


@pytest.mark.parametrize(
    "command",
    [
        "imdscreds credentials",
        "/opt/app/.venv/bin/imdscreds credentials --format credential-process",
        "python3 -m imdscreds credentials --timeout 2",
    ],
)
def test_the_readmes_credential_process_recipe_is_the_instance_role(
    capsys: pytest.CaptureFixture[str],
    fake_imds: FakeIMDS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    config = tmp_path / "config"
    code, finding, _ = shadowing_with_profile(capsys, fake_imds, config, monkeypatch, command)
    assert (code, finding["status"]) == (0, "pass")
    assert finding["summary"] == (
        f"the profile instance in {config} gets the instance role through `imdscreds "
        "credentials` (credential_process); nothing outranks it"
    )


@pytest.mark.parametrize(
    "command", ["aws-vault export --format=json dev", "imdscreds doctor", "imdscreds --version"]
)
def test_another_credential_process_shadows_the_role_in_a_sentence_that_reads(
    capsys: pytest.CaptureFixture[str],
    fake_imds: FakeIMDS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    config = tmp_path / "config"
    _, finding, report = shadowing_with_profile(capsys, fake_imds, config, monkeypatch, command)
    assert finding["status"] == "warn"
    assert finding["summary"] == (
        f"botocore would use the profile instance in {config}, which runs a credential_process, "
        "not the instance role"
    )
    assert "aws-vault" not in report  # a command line is not echoed


# -- the address the advice names --------------------------------------------------------------


def test_a_configured_endpoint_gets_advice_about_that_endpoint(
    capsys: pytest.CaptureFixture[str], unreachable_endpoint: str
) -> None:
    run = run_doctor_cli(capsys, "--offline", "--endpoint", unreachable_endpoint)
    finding = run.finding("imds-reachable")
    assert finding["status"] == "fail"
    fix, detail = finding["fix"], finding["detail"]
    assert f"The endpoint {unreachable_endpoint} is configured (argument)" in fix
    assert f"curl -sv -m 2 -X PUT {unreachable_endpoint}/latest/api/token" in fix
    assert "iptables" not in fix
    assert "IPv6" not in fix
    assert "nothing listens at the configured endpoint" in detail
    assert "off EC2" not in detail


def test_the_ipv4_default_gets_no_ipv6_advice() -> None:
    fix = fixes.imds_unreachable(IPV4_ENDPOINT, "default")
    assert "look for what blocks 169.254.169.254" in fix
    assert "iptables -S OUTPUT" in fix
    assert "IPv6" not in fix
    assert "fd00:ec2::254" not in fix


def test_the_ipv6_mode_gets_advice_about_the_ipv6_endpoint() -> None:
    source = "endpoint_mode IPv6 (env AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE)"
    fix = fixes.imds_unreachable(IPV6_ENDPOINT, source)
    assert "look for what blocks fd00:ec2::254" in fix
    assert "ip6tables" in fix
    assert "--http-protocol-ipv6 enabled" in fix
    assert f"curl -sv -m 2 -X PUT {IPV6_ENDPOINT}/latest/api/token" in fix
    # 169.254.169.254 appears only as the way back to the IPv4 endpoint, never as what is blocked.
    assert fix.count("169.254.169.254") == 1
    assert f"unset the endpoint mode to use {IPV4_ENDPOINT}" in fix


def test_an_invalid_endpoint_says_so_in_the_header(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ftp://169.254.169.254")
    code = main(["doctor", "--offline"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0] == (
        "imdscreds doctor: the IMDS settings are invalid (see endpoint-config)"
    )
    assert "no valid IMDS endpoint" not in out


# -- the fix matches the cause -----------------------------------------------------------------


def test_demo_malformed_document_gets_advice_for_a_malformed_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", "--scenario", "malformed", "--json"])
    report = json.loads(capsys.readouterr().out)
    finding = next(f for f in report["findings"] if f["id"] == "credentials-expiry")
    assert (code, finding["status"]) == (1, "fail")
    assert "wait five minutes" not in finding["fix"]
    assert "something else answers at" in finding["fix"]
    assert "JSON" in finding["detail"]


def test_demo_expired_credentials_still_get_the_wait_for_renewal_advice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", "--scenario", "expired", "--json"])
    report = json.loads(capsys.readouterr().out)
    finding = next(f for f in report["findings"] if f["id"] == "credentials-expiry")
    assert (code, finding["status"]) == (1, "fail")
    assert "wait five minutes" in finding["fix"]


def _endpoint_config_fix(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    run = run_doctor_cli(capsys, "--offline")
    finding = run.finding("endpoint-config")
    assert (run.code, finding["status"]) == (1, "fail")
    return finding


def test_a_garbage_config_file_gets_a_fix_that_points_at_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_bytes(b"\x00\x01garbage[[[\nno equals here\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    fix = _endpoint_config_fix(capsys)["fix"]
    assert f"Fix the file {config}:" in fix
    assert "AWS_METADATA_SERVICE_NUM_ATTEMPTS" not in fix
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE" not in fix


def test_a_bad_value_in_the_config_file_gets_a_fix_naming_the_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nmetadata_service_timeout = soon\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    fix = _endpoint_config_fix(capsys)["fix"]
    assert f"Edit {config}: fix or remove `metadata_service_timeout` in the default profile" in fix
    assert "AWS_METADATA_SERVICE_TIMEOUT" not in fix


def test_a_bad_environment_value_gets_a_fix_naming_that_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "many")
    fix = _endpoint_config_fix(capsys)["fix"]
    assert fix.startswith("Fix or unset AWS_METADATA_SERVICE_NUM_ATTEMPTS where it is set")
    assert "AWS_METADATA_SERVICE_TIMEOUT" not in fix
