"""Terraform modules under tests/trust_cases/, read by python-hcl2: each role's verdict and findings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imdscreds.trust import INSTALL_HINT, TerraformError, explain_role, read_terraform

CASES_DIR = Path(__file__).resolve().parent / "trust_cases"
PROFILE_AND_POLICY: list[str] = []  # the module also has an instance profile and a policy

# module directory -> {role address: (verdict, finding ids)}
MODULES: dict[str, dict[str, tuple[str, list[str]]]] = {
    "heredoc_only": {
        "aws_iam_role.app": ("allowed", ["no-permission-policy", "no-instance-profile"])
    },
    "healthy_jsonencode": {"aws_iam_role.app": ("allowed", [])},
    # Indexed and splatted references (count, for_each, one(), join(), element(concat())).
    "indexed_ec2_instance": {"aws_iam_role.this": ("allowed", [])},
    # The partition's dns_suffix (aws assumed), variable defaults, locals; a variable without a
    # default leaves the role unknown, naming that variable. No attachment: the warnings are true.
    "partition_and_defaults": {
        "aws_iam_role.node": ("allowed", ["no-permission-policy"]),
        "aws_iam_role.worker": ("allowed", ["no-permission-policy", "no-instance-profile"]),
        "aws_iam_role.custom": (
            "unknown",
            ["unresolved", "no-permission-policy"],
        ),
    },
    # data.aws_caller_identity in an AWS principal leaves only that principal unknown.
    "caller_identity_principal": {"aws_iam_role.server": ("allowed", [])},
    "splat_autoscaling": {
        "aws_iam_role.asg": ("allowed", []),
        "aws_iam_role.node": ("allowed", []),
    },
    "healthy_policy_document": {"aws_iam_role.app": ("allowed", [])},
    "file_trust": {"aws_iam_role.app": ("allowed", [])},
    "templatefile_plain": {"aws_iam_role.app": ("allowed", [])},
    # templatefile() fills ${service} from its literal vars map: ec2.amazonaws.com, allowed.
    "templatefile_vars": {"aws_iam_role.app": ("allowed", [])},
    "variable_trust": {"aws_iam_role.app": ("unknown", ["unresolved"])},
    "module_output": {"aws_iam_role.app": ("unknown", ["unresolved"])},
    "missing_data_source": {"aws_iam_role.app": ("unknown", ["unresolved"])},
    "lambda_policy_document": {"aws_iam_role.app": ("not-allowed", ["ec2-not-trusted"])},
    "misspelled_jsonencode": {"aws_iam_role.app": ("not-allowed", ["service-misspelled"])},
    "web_identity_document": {"aws_iam_role.app": ("not-allowed", ["wrong-action"])},
    "mfa_condition_document": {"aws_iam_role.app": ("not-allowed", ["condition-unmet"])},
    # A variable in a Condition's value makes that condition unknown, not the whole policy.
    "source_account_variable": {"aws_iam_role.app": ("unknown", ["condition-unknown"])},
    "resource_in_document": {"aws_iam_role.app": ("invalid", ["resource-element"])},
    "wildcard_principal": {"aws_iam_role.app": ("allowed", ["anyone-may-assume"])},
    "deny_document": {"aws_iam_role.app": ("denied", ["deny-matches"])},
    # Statements, principals and conditions made by dynamic blocks (hand checks in main.tf).
    "dynamic_statements": {
        "aws_iam_role.this": ("allowed", []),
        "aws_iam_role.guarded": ("unknown", ["condition-unknown"]),
    },
    # A conditional, coalesce() and try() decided by defaults; one conditional on a variable with
    # no default, whose two branches differ: unknown, both said.
    "conditional_policy": {
        "aws_iam_role.picked": ("allowed", []),
        "aws_iam_role.coalesced": ("allowed", []),
        "aws_iam_role.tried": ("allowed", []),
        "aws_iam_role.either": ("unknown", ["unresolved"]),
    },
    "merged_documents": {
        "aws_iam_role.ec2": ("allowed", []),
        "aws_iam_role.lambda_only": ("not-allowed", ["ec2-not-trusted"]),
    },
    "template_file_rendered": {"aws_iam_role.app": ("unknown", ["condition-unknown"])},
    # EKS node groups, Auto Mode and Karpenter make the profile: no no-instance-profile warning.
    "eks_node_roles": {
        "aws_iam_role.node_group": ("allowed", []),
        "aws_iam_role.auto_mode": ("allowed", []),
        "aws_iam_role.karpenter_node": ("allowed", []),
    },
    "path_root_file": {
        "aws_iam_role.rooted": ("allowed", []),
        "aws_iam_role.relative": ("allowed", []),
    },
    "two_files": {
        "aws_iam_role.web": ("allowed", []),
        "aws_iam_role.batch": ("allowed", ["no-instance-profile"]),
    },
}


def test_the_table_holds_at_least_fifteen_real_modules() -> None:
    assert len(MODULES) >= 15
    assert sorted(MODULES) == sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_verdicts_and_findings(module: str) -> None:
    roles = read_terraform([str(CASES_DIR / module)])
    got = {}
    for role in roles:
        explained = explain_role(role)
        got[role.block.address] = (
            explained.explanation.verdict,
            [finding.id for finding in explained.findings],
        )
        # Every finding points at the role's resource: its file and line.
        for finding in explained.findings:
            assert (finding.file, finding.line) == (role.block.file, role.block.line)
            assert (
                Path(role.block.file)
                .read_text()
                .splitlines()[role.block.line - 1]
                .startswith(f'resource "aws_iam_role" "{role.block.name}"')
            )
    assert got == MODULES[module]


def test_a_single_file_is_read_as_well_as_a_directory() -> None:
    (role,) = read_terraform([str(CASES_DIR / "heredoc_only" / "main.tf")])
    assert role.origin == "a heredoc or string"
    assert role.block.line == 2


def test_profile_and_permissions_are_followed_across_files() -> None:
    roles = {r.block.address: r for r in read_terraform([str(CASES_DIR / "two_files")])}
    web = roles["aws_iam_role.web"]
    assert [p.address for p in web.instance_profiles] == ["aws_iam_instance_profile.web"]
    assert web.instance_profiles[0].file.endswith("profiles.tf")
    assert roles["aws_iam_role.batch"].permissions == (
        f"aws_iam_policy_attachment.shared ({CASES_DIR / 'two_files' / 'profiles.tf'}:6)",
    )


def test_unresolved_names_the_expression_never_guesses() -> None:
    (role,) = read_terraform([str(CASES_DIR / "variable_trust")])
    assert role.document is None
    assert role.unresolved is not None
    assert "var.trust_policy" in role.unresolved


def test_missing_extra_is_an_import_error_naming_the_pip_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "hcl2", None)  # as if python-hcl2 were not installed
    with pytest.raises(ImportError, match=r"pip install 'imdscreds\[terraform\]'"):
        read_terraform([str(CASES_DIR / "heredoc_only")])
    assert "imdscreds[terraform]" in INSTALL_HINT


def test_a_conditional_on_an_unknown_value_names_it_and_says_each_branch() -> None:
    roles = {r.block.address: r for r in read_terraform([str(CASES_DIR / "conditional_policy")])}
    either = explain_role(roles["aws_iam_role.either"])
    assert roles["aws_iam_role.either"].unresolved == "it depends on var.for_lambda (no default)"
    assert either.explanation.summary.endswith(
        "if var.for_lambda is true, not-allowed; if false, allowed."
    )


def test_a_dynamic_condition_over_an_unknown_list_names_the_list() -> None:
    roles = {r.block.address: r for r in read_terraform([str(CASES_DIR / "dynamic_statements")])}
    summary = explain_role(roles["aws_iam_role.guarded"]).explanation.summary
    assert "var.role_conditions (no default), a dynamic condition's for_each" in summary


def test_eks_and_karpenter_make_the_instance_profile_and_say_so() -> None:
    roles = {r.block.address: r for r in read_terraform([str(CASES_DIR / "eks_node_roles")])}
    facts = {address: explain_role(role).facts[0] for address, role in roles.items()}
    assert facts["aws_iam_role.node_group"].startswith(
        "Instance profile: made from the role by aws_eks_node_group.this"
    )
    assert "aws_eks_cluster.this" in facts["aws_iam_role.auto_mode"]
    assert "aws_eks_access_entry.karpenter_node" in facts["aws_iam_role.karpenter_node"]


def test_each_directory_is_a_module_with_its_own_variables(tmp_path: Path) -> None:
    # Two modules both name var.service; each role takes its own module's default.
    for name, service in (("ec2", "ec2.amazonaws.com"), ("lambda", "lambda.amazonaws.com")):
        module = tmp_path / name
        module.mkdir()
        (module / "main.tf").write_text(
            f'variable "service" {{\n  default = "{service}"\n}}\n'
            'resource "aws_iam_role" "r" {\n'
            '  assume_role_policy = jsonencode({Version = "2012-10-17", Statement = [{'
            'Effect = "Allow", Action = "sts:AssumeRole", Principal = {Service = var.service}}]})\n'
            "}\n"
        )
    roles = read_terraform([str(tmp_path / "ec2"), str(tmp_path / "lambda")])
    verdicts = [explain_role(role).explanation.verdict for role in roles]
    assert verdicts == ["allowed", "not-allowed"]


def test_variables_given_by_name_override_defaults() -> None:
    (role,) = [
        r
        for r in read_terraform([str(CASES_DIR / "conditional_policy")], {"for_lambda": False})
        if r.block.name == "either"
    ]
    assert role.unresolved is None
    assert explain_role(role).explanation.verdict == "allowed"


def test_the_partition_asked_for_fills_in_data_aws_partition() -> None:
    # In aws-cn, ec2.${dns_suffix} is ec2.amazonaws.com.cn: not the commercial EC2 principal.
    roles = read_terraform([str(CASES_DIR / "eks_node_roles")], partition="aws-cn")
    node = next(r for r in roles if r.block.name == "node_group")
    assert node.origin.endswith("assuming partition aws-cn (dns_suffix amazonaws.com.cn)")
    assert "ec2.amazonaws.com.cn" in str(node.document)
    explained = explain_role(node)
    assert explained.explanation.verdict == "not-allowed"
    assert "service-china-partition" in [f.id for f in explained.findings]


def test_an_unknown_partition_is_an_error_naming_the_partitions() -> None:
    with pytest.raises(TerraformError) as raised:
        read_terraform([str(CASES_DIR / "eks_node_roles")], partition="aws-moon")
    assert "'aws-moon' is not an AWS partition" in str(raised.value)
    assert "aws-us-gov" in raised.value.hint
