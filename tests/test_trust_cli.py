"""``imdscreds trust explain``: in-process through ``main`` (capsys), and once as a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imdscreds.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHARED_ROLE = ROOT.parent / "shared" / "trust" / "test_role.tf"
CASES = Path(__file__).resolve().parent / "trust_cases"
README = ROOT / "README.md"

HEALTHY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["trust", "explain", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_questions_own_example_from_shared(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clone with no shared/ beside it skips, as the conformance tests do.
    if not SHARED_ROLE.is_file():
        pytest.skip(f"{SHARED_ROLE} is absent")
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "../shared/trust/test_role.tf")
    assert code == 0
    assert "aws_iam_role.test_role (../shared/trust/test_role.tf:3)" in out
    assert (
        "EC2 may assume this role: statement 1 allows ec2.amazonaws.com to call sts:AssumeRole."
        in out
    )
    assert "Permission policies: none attached in these files." in out
    assert "Instance profile: none in these files." in out
    # ... with the Terraform for both
    assert 'resource "aws_iam_role_policy_attachment" "test_role" {' in out
    assert 'resource "aws_iam_instance_profile" "test_role" {' in out
    assert "iam_instance_profile = aws_iam_instance_profile.test_role.name" in out
    assert out.rstrip().endswith(
        "Verdict: ec2.amazonaws.com may assume 1 of 1 role; 0 failed, 2 warnings."
    )
    assert SHARED_ROLE.read_text() == (ROOT / "examples" / "trust" / "test_role.tf").read_text()


def readme_sample() -> str:
    section = README.read_text().split("## imdscreds trust", 1)[1]
    rest = section.split("Output for the question's example", 1)[1]
    return rest.split("```text\n", 1)[1].split("```", 1)[0]


def test_readme_sample_is_a_real_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "examples/trust/test_role.tf")
    assert code == 0
    assert out == readme_sample()


def test_healthy_json_policy_exits_0_with_no_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(HEALTHY))
    code, out, _ = run(capsys, str(path))
    assert code == 0
    assert "! " not in out
    assert "✗" not in out
    assert "0 failed, 0 warnings" in out
    assert "grants nothing until a permission policy is attached" in " ".join(out.split())


def test_policy_that_keeps_ec2_out_exits_1_with_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "trust.json"
    path.write_text(
        json.dumps(
            {**HEALTHY, "Statement": [{**HEALTHY["Statement"][0], "Principal": {"Service": "ec2"}}]}
        )
    )  # type: ignore[dict-item]
    code, out, _ = run(capsys, str(path))
    assert code == 1
    assert "✗ service-misspelled" in out
    assert '"Principal": {"Service": "ec2.amazonaws.com"}' in out


def test_stdin_and_json_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(HEALTHY)))
    code, out, _ = run(capsys, "-", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["ok"] is True
    (result,) = document["results"]
    assert (result["source"], result["verdict"], result["findings"]) == ("stdin", "allowed", [])
    assert result["statements"][0]["principal"] == {
        "matched": True,
        "reason": "names Service: ec2.amazonaws.com",
    }


def test_another_principal_may_be_asked_about(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(HEALTHY))
    code, out, _ = run(capsys, str(path), "--principal", "lambda.amazonaws.com")
    assert code == 1
    assert "lambda.amazonaws.com may not assume this role" in out


def test_terraform_directory_finds_file_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(CASES / "two_files"), "--json")
    assert code == 0  # warnings only
    results = {r["role"]: r for r in json.loads(out)["results"]}
    batch = results["aws_iam_role.batch"]
    assert batch["source"] == f"{CASES / 'two_files' / 'roles.tf'}:9"
    assert [(f["id"], f["line"]) for f in batch["findings"]] == [("no-instance-profile", 9)]


@pytest.mark.parametrize(
    "args",
    [
        ["/nonexistent/trust.json"],
        ["/nonexistent/dir/main.tf"],
        [str(CASES / "heredoc_only" / "nothing.tf")],
    ],
)
def test_unreadable_input_is_a_one_line_error_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("imdscreds: error: ")
    assert len(err.strip().splitlines()) == 1


def test_invalid_terraform_is_a_usage_error_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.tf"
    bad.write_text('resource "aws_iam_role" "x" {\n  name = \n')
    code, _, err = run(capsys, str(bad))
    assert code == 2
    assert f"{bad}: not valid Terraform" in err


def test_no_colour_when_piped_or_no_color(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"Statement": HEALTHY["Statement"]}))
    completed = subprocess.run(
        [sys.executable, "-m", "imdscreds", "trust", "explain", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "\x1b[" not in completed.stdout
    assert "! version-missing" in completed.stdout


def test_text_from_the_file_cannot_drive_the_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hostile = {
        "Version": "2012-10-17",
        "Statement": [{**HEALTHY["Statement"][0], "Sid": "x\x1b[2Jy"}],  # type: ignore[dict-item]
    }
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(hostile))
    code, out, _ = run(capsys, str(path))
    assert code == 0
    assert "\x1b" not in out
    assert 'statement 1 ("x\\x1b[2Jy") allows' in out


def test_terraform_error_carries_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "/nonexistent/main.tf")
    assert code == 2
    assert "terraform validate" in err


def test_a_policy_nested_ten_thousand_deep_is_invalid_json_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 10_000 + "]" * 10_000)
    code, out, err = run(capsys, str(path))
    assert code == 1
    assert "invalid-json" in out
    assert "nested too deep" in out
    assert "Traceback" not in err


# Runs the CLI in a fresh interpreter under the network guard (loaded from its file, so that the
# imdscreds.testing package, which imports the IMDS client, stays out of the count), then prints
# which of the online command's dependencies were imported.
_IMPORTS_SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("guard", sys.argv[1])
guard = sys.modules["guard"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)
with guard.block_non_loopback() as blocked:
    from imdscreds.cli import main
    code = main(["trust", "explain", *sys.argv[2:]])
heavy = ["requests", "urllib3", "botocore", "imdscreds.imds", "imdscreds.doctor.runner"]
print(json.dumps({"code": code, "blocked": len(blocked.blocked),
                  "loaded": [name for name in heavy if name in sys.modules]}))
"""


def test_trust_explain_imports_no_network_library(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(HEALTHY))
    guard = ROOT / "imdscreds" / "testing" / "guard.py"
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORTS_SCRIPT, str(guard), str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    last = json.loads(completed.stdout.strip().splitlines()[-1])
    assert last == {"code": 0, "blocked": 0, "loaded": []}


def test_a_file_with_a_byte_order_mark_is_read_and_the_mark_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "trust.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(HEALTHY).encode())
    code, out, _ = run(capsys, str(path))
    assert code == 1
    assert "byte-order-mark" in out
    assert "Once the mark is removed: EC2 may assume this role" in out


def test_a_federated_principal_is_asked_about_its_own_call(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    saml = "arn:aws:iam::123456789012:saml-provider/ExampleIdP"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": saml},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
            }
        ],
    }
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(document))
    code, out, _ = run(capsys, str(path), "--principal", saml, "--json")
    assert code == 1  # unknown offline: it depends on the assertion
    answer = json.loads(out)
    assert answer["action"] == "sts:AssumeRoleWithSAML"
    (result,) = answer["results"]
    assert result["summary"] == (
        f"Whether {saml} may assume this role depends on the SAML assertion: statement 1 allows "
        f"sts:AssumeRoleWithSAML only with a SAML assertion from {saml} that carries "
        "aud = https://signin.aws.amazon.com/saml."
    )


def test_partition_aws_cn_asks_about_the_china_ec2_principal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = str(Path(__file__).resolve().parent / "trust_cases" / "eks_node_roles")
    code, out, _ = run(capsys, module, "--partition", "aws-cn")
    assert code == 0
    assert out.startswith("imdscreds trust: may ec2.amazonaws.com.cn call sts:AssumeRole?")
    assert "assuming partition aws-cn (dns_suffix amazonaws.com.cn)" in " ".join(out.split())
    code, _, err = run(capsys, module, "--partition", "aws-moon")
    assert code == 2
    assert "'aws-moon' is not an AWS partition. Use one of: aws, aws-cn" in err
