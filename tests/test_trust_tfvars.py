"""Terraform variable values: tfvars files beside a module, -var-file and -var, in Terraform's order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stack_apps.support import HERE, assert_nothing_left_loopback, stack_env

from imdscreds.cli import main
from imdscreds.trust import TerraformError, explain_role, read_terraform
from imdscreds.trust.tfvars import CommandLine, auto_files, read_variable_file, read_variables

INPUTS = Path(__file__).resolve().parent / "trust_inputs"
MODULE = INPUTS / "tfvars_module"
BARE = INPUTS / "no_tfvars"
FILES = INPUTS / "var_files"
ROOT = Path(__file__).resolve().parent.parent


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["trust", "explain", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def verdicts(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    code, out, err = explain(capsys, "--json", *args)
    assert code in (0, 1), err
    return {result["role"]: result["verdict"] for result in json.loads(out)["results"]}


def test_auto_files_in_terraforms_order() -> None:
    assert [Path(name).name for name in auto_files(str(MODULE))] == [
        "terraform.tfvars",
        "terraform.tfvars.json",
        "a.auto.tfvars",
        "b.auto.tfvars.json",
    ]


def test_later_files_win_and_read_terraform_reads_them_by_itself() -> None:
    # terraform.tfvars says lambda, .tfvars.json ecs-tasks, a.auto codebuild, b.auto.json ec2.
    read = read_variables([str(MODULE)])
    assert read.values == {"trusted_service": "ec2.amazonaws.com"}
    (role,) = read_terraform([str(MODULE)])
    assert isinstance(role.document, str)  # the JSON Terraform would render
    document = json.loads(role.document)
    assert document["Statement"][0]["Principal"] == {"Service": ["ec2.amazonaws.com"]}
    assert explain_role(role).explanation.verdict == "allowed"


def test_variables_given_override_the_tfvars_files() -> None:
    (role,) = read_terraform([str(MODULE)], {"trusted_service": "lambda.amazonaws.com"})
    assert explain_role(role).explanation.verdict == "not-allowed"


def test_a_tf_file_alone_reads_no_tfvars() -> None:
    (role,) = read_terraform([str(MODULE / "main.tf")])
    assert role.document is None
    assert role.unresolved is not None
    assert "var.trusted_service" in role.unresolved


def test_command_line_in_order_later_wins(capsys: pytest.CaptureFixture[str]) -> None:
    ec2 = str(FILES / "ec2.tfvars")
    lam = str(FILES / "lambda.tfvars.json")
    assert set(verdicts(capsys, str(BARE), "--var-file", ec2).values()) == {"allowed"}
    assert set(verdicts(capsys, str(BARE), "-var-file", ec2, "-var-file", lam).values()) == {
        "not-allowed"
    }
    # A -var after the file wins over it for that one variable only.
    got = verdicts(capsys, str(BARE), "-var-file", lam, "-var", "trusted_service=ec2.amazonaws.com")
    assert got == {"aws_iam_role.single": "allowed", "aws_iam_role.many": "not-allowed"}
    # And a file after the -var wins over the -var.
    got = verdicts(
        capsys, str(BARE), "--var", "trusted_service=ec2.amazonaws.com", "-var-file", lam
    )
    assert got == {"aws_iam_role.single": "not-allowed", "aws_iam_role.many": "not-allowed"}


def test_var_of_a_list_type_is_read_as_hcl(capsys: pytest.CaptureFixture[str]) -> None:
    got = verdicts(capsys, str(BARE), '-var=services=["ssm.amazonaws.com", "ec2.amazonaws.com"]')
    assert got["aws_iam_role.many"] == "allowed"
    assert got["aws_iam_role.single"] == "unknown"  # trusted_service still has no value


def test_var_of_no_type_is_a_literal_string() -> None:
    read = read_variables([str(BARE)], [CommandLine("var", 'trusted_service=["x"]')])
    assert read.values == {"trusted_service": '["x"]'}
    read = read_variables([str(BARE)], [CommandLine("var", "allow=false")])
    assert read.values == {"allow": False}
    read = read_variables([str(BARE)], [CommandLine("var", "max_session_hours=12")])
    assert read.values == {"max_session_hours": 12}
    read = read_variables([str(BARE)], [CommandLine("var", "max_session_hours=1.5")])
    assert read.values == {"max_session_hours": 1.5}


def test_text_output_names_the_variable_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(capsys, str(MODULE), "--var-file", str(FILES / "ec2.tfvars"))
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("Variable files read:"))
    assert line.index("terraform.tfvars,") < line.index("b.auto.tfvars.json")
    assert line.rstrip(".").endswith("ec2.tfvars")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-var", "trusted_service"], "expected NAME=VALUE"),
        (["-var", "nosuch=1"], "no variable 'nosuch' is declared"),
        (["-var", "allow=maybe"], "is not true or false"),
        (["-var", "max_session_hours=twelve"], "is not a number"),
        (["-var", "max_session_hours=inf"], "is not a number"),
        (["-var", "services=[1"], "is not a valid HCL value"),
        (["--var-file", "missing.tfvars"], "missing.tfvars: no such variable file"),
        (["--var-file", str(FILES / "broken.tfvars")], "broken.tfvars: not a valid variable file"),
        (["--var-file", str(FILES / "broken.tfvars.json")], "broken.tfvars.json: not valid JSON"),
        (["--var-file", str(FILES / "array.tfvars.json")], "must hold a JSON object"),
        (["--var-file", str(FILES / "reference.tfvars")], "holds literal values only"),
    ],
)
def test_bad_variables_are_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, out, err = explain(capsys, str(BARE), *args)
    assert code == 2
    assert out == ""
    assert expected in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_var_without_terraform_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = explain(capsys, str(INPUTS / "plan" / "plan.json"), "-var", "x=1")
    assert code == 2
    assert "-var and -var-file apply to .tf files" in err


def test_read_variable_file_raises_terraform_error() -> None:
    with pytest.raises(TerraformError, match="no such variable file"):
        read_variable_file(str(FILES / "absent.tfvars"))


def test_end_to_end_as_a_subprocess(tmp_path: Path) -> None:
    module = tmp_path / "mod"
    module.mkdir()
    (module / "main.tf").write_text((BARE / "main.tf").read_text())
    (module / "terraform.tfvars").write_text('trusted_service = "lambda.amazonaws.com"\n')
    command = [sys.executable, "-m", "imdscreds", "trust", "explain", str(module)]
    env = stack_env(tmp_path, NO_COLOR="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    first = subprocess.run(
        [*command, "-var", 'services=["ec2.amazonaws.com"]'],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert first.returncode == 1, first.stderr
    assert f"Variable files read: {module / 'terraform.tfvars'}." in first.stdout
    second = subprocess.run(
        [
            *command,
            "-var",
            "trusted_service=ec2.amazonaws.com",
            "-var",
            'services=["ec2.amazonaws.com"]',
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    bad = subprocess.run(
        [*command, "-var", "=x"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert bad.returncode == 2
    assert "expected NAME=VALUE" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert_nothing_left_loopback(tmp_path)
