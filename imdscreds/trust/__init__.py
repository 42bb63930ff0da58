"""Trust (assume-role) policies, explained offline: may a principal assume the role, and why.

Pure functions, no network, no AWS credentials: ``parse_policy`` reads a document, ``evaluate``
applies IAM's rules for one ``Request`` (EC2 calling ``sts:AssumeRole`` by default), and
``explain_policy`` turns the decision into a sentence and findings with fixes. ``read_terraform``
finds the roles in ``.tf`` files (python-hcl2, the ``[terraform]`` extra) and ``explain_role`` adds
what the role needs besides trust: an instance profile and permission policies.
"""

from __future__ import annotations

from imdscreds.trust.conditions import ConditionResult, RequestContext, ec2_context
from imdscreds.trust.evaluate import (
    EC2_SERVICE,
    Decision,
    Match,
    Request,
    StatementResult,
    evaluate,
    match_action,
    match_principal,
)
from imdscreds.trust.explain import NOTE, Explanation, explain_policy
from imdscreds.trust.findings import FINDING_IDS, TrustFinding, minimal_fix
from imdscreds.trust.model import Policy, Statement, parse_policy
from imdscreds.trust.roles import RoleExplanation, explain_role
from imdscreds.trust.terraform import INSTALL_HINT, TerraformError, TerraformRole, read_terraform

__all__ = [
    "EC2_SERVICE",
    "FINDING_IDS",
    "INSTALL_HINT",
    "NOTE",
    "ConditionResult",
    "Decision",
    "Explanation",
    "Match",
    "Policy",
    "Request",
    "RequestContext",
    "RoleExplanation",
    "Statement",
    "StatementResult",
    "TerraformError",
    "TerraformRole",
    "TrustFinding",
    "ec2_context",
    "evaluate",
    "explain_policy",
    "explain_role",
    "match_action",
    "match_principal",
    "minimal_fix",
    "parse_policy",
    "read_terraform",
]
