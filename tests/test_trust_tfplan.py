"""Roles in ``terraform show -json`` output (a plan, or a state): read with no HCL parser."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from stack_apps.support import assert_nothing_left_loopback, run_python, stack_env

from imdscreds.cli import main
from imdscreds.trust import TerraformError, explain_role
from imdscreds.trust.tfplan import PlanBlock, is_plan, read_plan, read_plan_text

PLANS = Path(__file__).resolve().parent / "trust_inputs" / "plan"
PLAN = PLANS / "plan.json"
STATE = PLANS / "state.json"


def plan() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PLAN.read_text(encoding="utf-8"))
    return loaded


def by_address(source: Path) -> dict[str, Any]:
    return {role.block.address: role for role in read_plan_text(source.read_text(), str(source))}


def test_every_role_of_the_plan_with_module_and_count_addresses() -> None:
    roles = by_address(PLAN)
    assert list(roles) == [
        "aws_iam_role.federated",
        "aws_iam_role.web",
        "module.workers.aws_iam_role.lambda",
        "module.workers.aws_iam_role.this[0]",
        "module.batch.aws_iam_role.this",
    ]
    worker = roles["module.workers.aws_iam_role.this[0]"].block
    assert isinstance(worker, PlanBlock)
    assert (worker.type, worker.name, worker.where) == ("aws_iam_role", "this", f"{PLAN}:1")


def test_verdicts_profiles_and_permissions_from_the_plan() -> None:
    roles = by_address(PLAN)
    explained = {address: explain_role(role) for address, role in roles.items()}
    verdicts = {address: e.explanation.verdict for address, e in explained.items()}
    assert verdicts == {
        "aws_iam_role.federated": "unknown",
        "aws_iam_role.web": "allowed",
        "module.workers.aws_iam_role.lambda": "not-allowed",
        "module.workers.aws_iam_role.this[0]": "allowed",
        "module.batch.aws_iam_role.this": "allowed",
    }
    web = roles["aws_iam_role.web"]
    assert [p.address for p in web.instance_profiles] == ["aws_iam_instance_profile.web"]
    assert web.permissions == (f"aws_iam_role_policy_attachment.web_ssm ({PLAN}:1)",)
    worker = roles["module.workers.aws_iam_role.this[0]"]
    assert [p.address for p in worker.instance_profiles] == [
        "module.workers.aws_iam_instance_profile.this[0]"
    ]
    assert worker.permissions == ("inline_policy read-queue",)
    assert roles["module.workers.aws_iam_role.lambda"].permissions == (
        "managed_policy_arns (arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole)",
    )
    # Healthy roles: no finding at all, so the profile and permission lookups were real.
    assert explained["aws_iam_role.web"].findings == ()
    assert explained["module.workers.aws_iam_role.this[0]"].findings == ()


def test_a_computed_role_name_is_followed_through_the_configurations_references() -> None:
    # name_prefix: no name in the plan, and no role value in its profile and attachment.
    batch = by_address(PLAN)["module.batch.aws_iam_role.this"]
    assert "name" not in batch.block.body
    assert [p.address for p in batch.instance_profiles] == [
        "module.batch.aws_iam_instance_profile.this"
    ]
    assert batch.permissions == (f"module.batch.aws_iam_role_policy_attachment.this ({PLAN}:1)",)
    assert explain_role(batch).findings == ()
    # Without the configuration nothing says which role they hold: the warnings come back.
    document = plan()
    del document["configuration"]
    roles = {role.block.address: role for role in read_plan(document, "p.json")}
    bare = roles["module.batch.aws_iam_role.this"]
    assert bare.instance_profiles == ()
    assert [f.id for f in explain_role(bare).findings] == [
        "no-permission-policy",
        "no-instance-profile",
    ]


def test_a_policy_unknown_until_apply_is_unresolved_naming_it() -> None:
    federated = by_address(PLAN)["aws_iam_role.federated"]
    assert federated.document is None
    assert federated.unresolved is not None
    assert "assume_role_policy is known only after apply" in federated.unresolved
    ids = [f.id for f in explain_role(federated).findings]
    assert ids[0] == "unresolved"


def test_a_missing_policy_that_is_not_unknown_says_so() -> None:
    document = plan()
    for change in document["resource_changes"]:
        change["change"]["after_unknown"].pop("assume_role_policy", None)
    roles = {role.block.address: role for role in read_plan(document, "p.json")}
    assert roles["aws_iam_role.federated"].unresolved == (
        "the role has no assume_role_policy in the plan (planned_values)"
    )


def test_state_json_reads_values_root_module() -> None:
    roles = by_address(STATE)
    assert list(roles) == ["aws_iam_role.web", "aws_iam_role.lambda"]
    web = roles["aws_iam_role.web"]
    assert web.origin == "the state (values)"
    assert web.permissions == (
        "managed_policy_arns (arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore)",
    )
    assert [f.id for f in explain_role(web).findings] == ["no-instance-profile"]


def test_is_plan_tells_plans_from_policies() -> None:
    assert is_plan(plan())
    assert is_plan({"format_version": "1.0", "values": {}})
    assert not is_plan({"Version": "2012-10-17", "Statement": []})
    assert not is_plan({"format_version": "1.0"})
    with pytest.raises(TerraformError, match="not the JSON of `terraform show -json`"):
        read_plan({"Statement": []}, "x.json")


def test_cli_detects_the_plan_and_explains_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trust", "explain", str(PLAN), "--json"])
    out = capsys.readouterr().out
    assert code == 1  # the Lambda role keeps EC2 out
    results = {r["role"]: r for r in json.loads(out)["results"]}
    assert results["module.workers.aws_iam_role.this[0]"]["verdict"] == "allowed"
    assert results["module.workers.aws_iam_role.this[0]"]["source"] == f"{PLAN}:1"
    assert "Trust policy: from the plan (planned_values)." in results["aws_iam_role.web"]["facts"]


def test_cli_reads_a_plan_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    document = plan()
    document["planned_values"]["root_module"]["child_modules"] = []
    document["planned_values"]["root_module"]["resources"] = [
        r for r in document["planned_values"]["root_module"]["resources"] if "web" in r["address"]
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(document)))
    code = main(["trust", "explain", "-"])
    out = capsys.readouterr().out
    assert code == 0
    assert "aws_iam_role.web (stdin:1)" in out
    assert "Instance profile: aws_iam_instance_profile.web (stdin:1)." in out


def test_a_plan_with_no_role_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"format_version": "1.2", "planned_values": {"root_module": {}}}))
    assert main(["trust", "explain", str(empty)]) == 2
    assert "no aws_iam_role resource in this plan or state" in capsys.readouterr().err


def test_a_plan_needs_no_hcl_parser(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_hcl2(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "hcl2" or name.startswith("hcl2."):
            raise ImportError("no hcl2 here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hcl2)
    assert main(["trust", "explain", str(STATE)]) == 1
    assert "aws_iam_role.lambda" in capsys.readouterr().out


def test_plan_end_to_end_as_a_subprocess(tmp_path: Path) -> None:
    env = stack_env(tmp_path, NO_COLOR="1")
    completed = run_python(
        tmp_path, ["-m", "imdscreds", "trust", "explain", str(PLAN)], timeout=60, env=env
    )
    assert completed.returncode == 1, completed.stderr
    assert "module.workers.aws_iam_role.this[0] (" in completed.stdout
    assert "Verdict: ec2.amazonaws.com may assume 3 of 5 roles; 1 failed" in completed.stdout
    assert_nothing_left_loopback(tmp_path)
