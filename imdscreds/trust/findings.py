"""Trust findings: stable ids, a status, the words, and a fix in JSON and in Terraform.

A finding has the doctor's shape (``id``, ``status``, ``summary``, ``detail``, ``fix``), so the
doctor's text renderer prints both; it adds where it points (a file and line) for Terraform.
The ids are a contract, as the doctor's are: scripts match on them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from imdscreds.trust.model import REJECTED, Problem

__all__ = [
    "FINDING_IDS",
    "MINIMAL_POLICY",
    "Status",
    "TrustFinding",
    "minimal_fix",
    "problem_finding",
]

Status = Literal["pass", "warn", "fail", "skip"]

FINDING_IDS: dict[str, str] = {
    # whether the principal gets in
    "ec2-not-trusted": "no statement lets the principal assume the role",
    "service-misspelled": "a Service principal is a misspelling of a real one",
    "service-china-partition": "ec2.amazonaws.com.cn is the principal of the China regions",
    "service-wrong-key": "the service is named under AWS or Federated instead of Service",
    "wrong-action": "the statement names the principal but not sts:AssumeRole",
    "deny-matches": "a Deny statement matches the request",
    "condition-unmet": "a condition the request cannot meet",
    "condition-unknown": "a condition on a key the request is not documented to carry",
    # security
    "anyone-may-assume": 'Principal "*": anyone may assume the role',
    "not-principal": "NotPrincipal in a trust policy",
    "unique-id-principal": "a unique id (AROA...) where an ARN belongs",
    # the document itself
    "invalid-json": "the document is not valid JSON",
    "not-a-policy": "the document is not a policy",
    "key-miscased": "an element name in the wrong case",
    "unknown-element": "an element a trust policy does not have",
    "effect-invalid": "Effect missing or not exactly Allow or Deny",
    "resource-element": "a Resource element, invalid in a trust policy",
    "principal-invalid": "a Principal IAM cannot read",
    "principal-missing": "a statement without a Principal",
    "action-invalid": "an Action IAM cannot read",
    "condition-invalid": "a Condition IAM cannot read",
    "statement-invalid": "a statement that is not an object",
    "byte-order-mark": "the document starts with a UTF-8 byte order mark",
    "version-missing": "no Version",
    "version-old": "the 2008-10-17 policy language",
    # Terraform: the rest of the role
    "unresolved": "an expression imdscreds cannot resolve offline",
    "no-permission-policy": "the role has no permission policy",
    "no-instance-profile": "no instance profile holds the role",
}

MINIMAL_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

_TERRAFORM_POLICY = """\
resource "aws_iam_role" "ROLE" {
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}"""


@lru_cache(maxsize=256)
def minimal_fix(role: str = "ROLE") -> str:
    """The minimal trust policy for an instance role, as JSON and as Terraform."""
    policy = json.dumps(MINIMAL_POLICY, indent=2)
    return "\n".join(
        [
            "The minimal trust policy for an instance role (JSON):",
            *("  " + line for line in policy.splitlines()),
            "Terraform:",
            *("  " + line for line in _TERRAFORM_POLICY.replace("ROLE", role).splitlines()),
        ]
    )


@dataclass(frozen=True)
class TrustFinding:
    """One thing worth saying about a trust policy or a role; ``file`` and ``line`` for Terraform."""

    id: str
    status: Status
    summary: str
    detail: str | None = None
    fix: str | None = None
    file: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if self.id not in FINDING_IDS:
            raise ValueError(f"unknown trust finding id {self.id!r}")

    def to_json(self) -> dict[str, Any]:
        """The finding as ``imdscreds trust explain --json`` carries it: every field, in order."""
        return dataclasses.asdict(self)


_PROBLEM_FIX = {
    "key-miscased": 'Write each element as IAM spells it: "Version", "Statement", "Effect", '
    '"Principal", "Service", "Action", "Condition".',
    "unknown-element": "Remove the element; a trust policy statement holds Sid, Effect, "
    "Principal, Action and Condition.",
    "effect-invalid": 'Write "Effect": "Allow" (Terraform aws_iam_policy_document: effect = "Allow").',
    "resource-element": "Delete the Resource element (in an aws_iam_policy_document: the "
    "resources argument); the role is the resource.",
    "version-missing": 'Add "Version": "2012-10-17" (jsonencode: Version = "2012-10-17").',
    "version-old": 'Write "Version": "2012-10-17".',
    "unique-id-principal": "Write the principal's ARN (arn:aws:iam::ACCOUNT:role/NAME) in "
    "place of the id, and save the policy again.",
    "not-principal": "Name the principals who may assume the role in Principal instead.",
    "byte-order-mark": "Save the file as UTF-8 without a BOM: `sed -i '1s/^\\xEF\\xBB\\xBF//' "
    'FILE`, or in PowerShell 7 `Set-Content -Encoding utf8NoBOM`, or your editor\'s "UTF-8" '
    '(not "UTF-8 with BOM") encoding.',
    "invalid-json": "Fix the JSON at the line and column given; in Terraform, jsonencode({...}) "
    "or an aws_iam_policy_document writes valid JSON for you.",
}


def problem_finding(problem: Problem) -> TrustFinding:
    """The finding for something the parser noticed in the document."""
    failing = problem.id in REJECTED or problem.id == "not-principal"
    status: Status = "fail" if failing else "warn"
    where = f"statement {problem.statement}: " if problem.statement else ""
    detail = None
    if problem.id in REJECTED:
        detail = (
            "IAM refuses to store a trust policy with this (MalformedPolicyDocument), so "
            "CreateRole or UpdateAssumeRolePolicy fails and the role keeps its old policy."
        )
    fix = problem.fix or _PROBLEM_FIX.get(problem.id, minimal_fix())
    return TrustFinding(problem.id, status, where + problem.text, detail, fix)
