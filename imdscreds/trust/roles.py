"""A Terraform role explained: its trust verdict, and what else it needs to be of use to an instance.

A trust policy alone grants nothing: the role also needs permission policies, and an instance gets
it only through an instance profile. Both are looked for in the same files, and their absence is
said with the Terraform that adds them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from imdscreds.trust.evaluate import EC2_SERVICE, Request
from imdscreds.trust.explain import Explanation, explain_policy
from imdscreds.trust.findings import TrustFinding
from imdscreds.trust.terraform import Block, TerraformRole

__all__ = ["RoleExplanation", "explain_role"]


@dataclass(frozen=True)
class RoleExplanation:
    """One Terraform role explained: the trust verdict, and what else it needs to be of use."""

    role: TerraformRole
    explanation: Explanation
    facts: tuple[str, ...]
    findings: tuple[TrustFinding, ...]

    @property
    def ok(self) -> bool:
        return self.explanation.allowed and not any(f.status == "fail" for f in self.findings)


def _no_permissions(role: Block) -> TrustFinding:
    return TrustFinding(
        "no-permission-policy",
        "warn",
        "the role grants nothing: no permission policy is attached to it in these files",
        "A trust policy only says who may assume the role. What the role may do comes from its "
        "permission policies; with none, every AWS call made with its credentials is denied "
        "(sts:GetCallerIdentity aside).",
        "\n".join(
            [
                "Attach the policies the instance's software needs, for example:",
                f'resource "aws_iam_role_policy_attachment" "{role.name}" {{',
                f"  role       = {role.address}.name",
                '  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"',
                "}",
            ]
        ),
    )


def _no_profile(role: Block) -> TrustFinding:
    return TrustFinding(
        "no-instance-profile",
        "warn",
        "no instance profile holds the role in these files, so no instance can use it",
        "EC2 hands a role to an instance only through an instance profile attached to the "
        "instance; IMDS then serves the role's credentials.",
        "\n".join(
            [
                f'resource "aws_iam_instance_profile" "{role.name}" {{',
                f'  name = "{role.body.get("name", role.name)}"',
                f"  role = {role.address}.name",
                "}",
                "and in the aws_instance (or aws_launch_template):",
                f"  iam_instance_profile = aws_iam_instance_profile.{role.name}.name",
            ]
        ),
    )


_UNRESOLVED_WHY = (
    "imdscreds reads heredocs, jsonencode({...}), aws_iam_policy_document data sources (with "
    "their dynamic blocks and merged documents), file() and templatefile(), variable defaults "
    "and locals; it does not guess a value it cannot see."
)
_UNRESOLVED_FIX = (
    "Give the value: -var NAME=VALUE or --var-file FILE; or run it on the rendered policy: "
    "`terraform show -json PLANFILE > plan.json` and `imdscreds trust explain plan.json`, or "
    "`aws iam get-role --role-name NAME --query Role.AssumeRolePolicyDocument | imdscreds trust "
    "explain -`."
)


def _unknown(role: TerraformRole, request: Request, why: str) -> Explanation:
    who = "EC2" if request.principal == EC2_SERVICE else request.principal
    unresolved = TrustFinding(
        "unresolved",
        "warn",
        f"the trust policy cannot be read offline: {why}",
        _UNRESOLVED_WHY,
        _UNRESOLVED_FIX,
    )
    return Explanation(
        "unknown", f"Whether {who} may assume this role is unknown: {why}.", (unresolved,), None
    )


def _explain_branches(role: TerraformRole, request: Request) -> Explanation:
    """A policy chosen by a condition on an unknown value: each branch explained."""
    explained = [
        (when, None if document is None else explain_policy(document, request))
        for when, document in role.branches
    ]
    verdicts = {e.verdict if e is not None else "unknown" for _, e in explained}
    first = explained[0][1]
    if len(verdicts) == 1 and first is not None and first.verdict != "unknown":
        summary = f"{first.summary} The same holds on either side of {role.unresolved}."
        return Explanation(first.verdict, summary, first.findings, first.decision)
    said = "; ".join(f"{when}, {'unknown' if e is None else e.verdict}" for when, e in explained)
    return _unknown(role, request, f"{role.unresolved}: {said}")


def explain_role(role: TerraformRole, request: Request | None = None) -> RoleExplanation:
    """The role's trust verdict for ``request`` (EC2 by default), its profile and permissions."""
    request = request or Request()
    block = role.block
    if role.document is not None:
        explanation = explain_policy(role.document, request)
    elif role.branches:
        explanation = _explain_branches(role, request)
    else:
        explanation = _unknown(role, request, str(role.unresolved))
    found = list(explanation.findings)
    ec2 = request.principal == EC2_SERVICE
    if role.permissions:
        facts = [f"Permission policies: {', '.join(role.permissions)}."]
    else:
        facts = ["Permission policies: none attached in these files."]
        found.append(_no_permissions(block))
    if role.instance_profiles:
        facts.insert(
            0,
            "Instance profile: "
            + ", ".join(f"{p.address} ({p.where})" for p in role.instance_profiles)
            + ".",
        )
    elif role.profile_made_by is not None and ec2:
        facts.insert(0, f"Instance profile: made from the role by {role.profile_made_by}.")
    elif ec2:
        facts.insert(0, "Instance profile: none in these files.")
        # Only a role EC2 may assume needs one; a Lambda, ECS or CodeBuild role never does.
        if explanation.verdict == "allowed":
            found.append(_no_profile(block))
    placed = tuple(dataclasses.replace(f, file=block.file, line=block.line) for f in found)
    return RoleExplanation(role, explanation, tuple(facts), placed)
