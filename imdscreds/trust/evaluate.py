"""IAM's decision for one request against a trust policy, statement by statement.

Three small pure functions decide whether a statement applies: ``match_principal``,
``match_action`` and (in ``conditions``) ``evaluate_condition``; each returns its answer with the
reason, so the explanation is made where the decision is, never rebuilt afterwards. ``evaluate``
combines them in IAM's order: an explicit Deny wins, then an Allow, else the implicit deny. A
statement whose condition is unknown makes the verdict unknown only where it could change it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from imdscreds.trust.conditions import (
    ConditionResult,
    RequestContext,
    ec2_context,
    evaluate_condition,
    glob,
    token_context,
)
from imdscreds.trust.model import Policy, Principals, Statement

__all__ = [
    "EC2_SERVICE",
    "Decision",
    "Match",
    "Request",
    "StatementResult",
    "Verdict",
    "default_action",
    "evaluate",
    "match_action",
    "match_principal",
]

EC2_SERVICE = "ec2.amazonaws.com"
ASSUME_ROLE = "sts:AssumeRole"
Verdict = Literal["allowed", "denied", "not-allowed", "unknown", "invalid"]
_ACCOUNT = re.compile(r"^\d{12}$")
# Web identity providers IAM names without an ARN: {"Federated": "accounts.google.com"}.
NAMED_PROVIDERS = frozenset(
    {
        "cognito-identity.amazonaws.com",
        "accounts.google.com",
        "graph.facebook.com",
        "www.amazon.com",
    }
)


def default_action(principal: str) -> str:
    """The call ``principal`` makes to assume a role: web identity, SAML, or sts:AssumeRole."""
    if ":saml-provider/" in principal:
        return "sts:AssumeRoleWithSAML"
    if ":oidc-provider/" in principal or principal.lower() in NAMED_PROVIDERS:
        return "sts:AssumeRoleWithWebIdentity"
    return ASSUME_ROLE


@dataclass(frozen=True)
class Request:
    """Who asks to do what. The default is the EC2 service assuming a role for an instance."""

    principal: str = EC2_SERVICE
    action: str = ASSUME_ROLE
    context: RequestContext | None = None

    @cached_property
    def kind(self) -> str:
        """The Principal element kind that names this principal: Service, AWS or Federated."""
        if (
            ":oidc-provider/" in self.principal
            or ":saml-provider/" in self.principal
            or self.principal.lower() in NAMED_PROVIDERS
        ):
            return "Federated"
        if self.principal.startswith("arn:") or _ACCOUNT.match(self.principal):
            return "AWS"
        return "Service"

    @cached_property
    def account(self) -> str | None:
        if _ACCOUNT.match(self.principal):
            return self.principal
        parts = self.principal.split(":")
        return parts[4] if self.principal.startswith("arn:") and len(parts) > 5 else None

    def request_context(self) -> RequestContext:
        if self.context is not None:
            return self.context
        if self.kind == "Service" and self.principal.startswith("ec2."):
            return ec2_context(self.principal)
        if self.kind == "Federated":
            token = token_context(self.principal, self.action)
            if token is not None:
                return token
        return RequestContext(who=f"the request of {self.principal}")


@dataclass(frozen=True)
class Match:
    """Whether one element of a statement applies to the request, and why."""

    matched: bool
    reason: str


@dataclass(frozen=True)
class StatementResult:
    """One statement's part in the decision."""

    statement: Statement
    principal: Match
    action: Match
    condition: ConditionResult

    @property
    def applies(self) -> bool | None:
        """True when the statement applies to the request, None when its condition is unknown."""
        if not (self.principal.matched and self.action.matched) or self.statement.effect is None:
            return False
        if self.condition.truth == "unknown":
            return None
        return self.condition.truth == "met"


@dataclass(frozen=True)
class Decision:
    """The verdict, the statements that decided it, and every statement's result."""

    verdict: Verdict
    request: Request
    deciding: tuple[StatementResult, ...]
    results: tuple[StatementResult, ...]


def _names(principals: Principals, request: Request) -> tuple[bool, str]:
    if principals.anyone:
        return True, '"*" (anyone)'
    if request.kind == "AWS":
        for name in principals.by_kind.get("AWS", ()):
            if name == "*":
                return True, '{"AWS": "*"} (anyone)'
            if name == request.principal:
                return True, f"AWS: {name}"
            if request.account and name in (
                request.account,
                f"arn:aws:iam::{request.account}:root",
            ):
                return True, f"AWS: {name} (the whole account {request.account})"
        return False, principals.describe()
    for name in principals.by_kind.get("AWS", ()):
        # IAM treats {"AWS": "*"} as "Principal": "*": everyone, service principals included.
        if name == "*":
            return True, '{"AWS": "*"} (anyone)'
    if request.principal in principals.by_kind.get(request.kind, ()):
        return True, f"{request.kind}: {request.principal}"
    return False, principals.describe()


def match_principal(statement: Statement, request: Request) -> Match:
    """Whether the statement's Principal (or NotPrincipal) covers the request's principal."""
    if statement.principal is not None:
        hit, said = _names(statement.principal, request)
        if hit:
            return Match(True, f"names {said}")
        return Match(False, f"names {said}, not {request.principal}")
    if statement.not_principal is not None:
        hit, said = _names(statement.not_principal, request)
        if hit:
            return Match(False, f"NotPrincipal excludes {said}")
        return Match(True, f"NotPrincipal excludes only {said}, so it covers {request.principal}")
    return Match(False, "has no Principal IAM can read")


def _action_hit(patterns: tuple[str, ...], action: str) -> str | None:
    for pattern in patterns:
        # IAM: "The prefix and the action name are case insensitive".
        if glob(pattern, ignore_case=True).fullmatch(action):
            return pattern
    return None


def match_action(statement: Statement, request: Request) -> Match:
    """Whether the statement's Action (or NotAction) covers the request's action."""
    if statement.actions is not None:
        hit = _action_hit(statement.actions, request.action)
        if hit is not None:
            return Match(True, f"lets {request.action} through {hit}")
        return Match(False, f"names {', '.join(statement.actions)}, not {request.action}")
    if statement.not_actions is not None:
        hit = _action_hit(statement.not_actions, request.action)
        if hit is not None:
            return Match(False, f"NotAction excludes {request.action} ({hit})")
        return Match(True, f"NotAction excludes only {', '.join(statement.not_actions)}")
    return Match(False, "has no Action IAM can read")


def evaluate(policy: Policy, request: Request | None = None) -> Decision:
    """IAM's decision for ``request`` (by default EC2 calling sts:AssumeRole) on ``policy``."""
    request = request or Request()
    context = request.request_context()
    results = tuple(
        StatementResult(
            statement,
            principal,
            action,
            evaluate_condition(statement.condition, context)
            if principal.matched and action.matched
            else ConditionResult("met", ()),
        )
        for statement in policy.statements
        for principal, action in [
            (match_principal(statement, request), match_action(statement, request))
        ]
    )

    def having(effect: str, applies: bool | None) -> tuple[StatementResult, ...]:
        return tuple(r for r in results if r.statement.effect == effect and r.applies is applies)

    deny, maybe_deny = having("Deny", True), having("Deny", None)
    allow, maybe_allow = having("Allow", True), having("Allow", None)
    verdict: Verdict
    deciding: tuple[StatementResult, ...]
    if policy.rejected:
        verdict, deciding = "invalid", ()
    elif deny:
        verdict, deciding = "denied", deny
    elif maybe_deny and (allow or maybe_allow):
        verdict, deciding = "unknown", maybe_deny
    elif allow:
        verdict, deciding = "allowed", allow
    elif maybe_allow:
        verdict, deciding = "unknown", maybe_allow
    else:
        verdict, deciding = "not-allowed", ()
    return Decision(verdict, request, deciding, results)
