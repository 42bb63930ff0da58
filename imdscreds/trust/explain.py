"""From a decision to words: the one-line answer, and findings with their fixes.

Every sentence here is built from the ``Match`` and ``ConditionResult`` reasons the evaluation
kept, so what is said is what was decided.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imdscreds.trust.conditions import CLAIMS_MARK
from imdscreds.trust.evaluate import (
    EC2_SERVICE,
    Decision,
    Request,
    StatementResult,
    Verdict,
    default_action,
    evaluate,
)
from imdscreds.trust.findings import Status, TrustFinding, minimal_fix, problem_finding
from imdscreds.trust.model import REJECTED, Policy, Statement, parse_policy
from imdscreds.trust.services import nearest_service

__all__ = ["NOTE", "Explanation", "explain_policy"]

NOTE = (
    "A trust policy only says who may assume the role: the role grants nothing until a permission "
    "policy is attached, and an instance uses it only through an instance profile."
)


@dataclass(frozen=True)
class Explanation:
    """A trust policy explained for one request: the verdict, the sentence, the findings."""

    verdict: Verdict
    summary: str
    findings: tuple[TrustFinding, ...]
    decision: Decision | None

    @property
    def allowed(self) -> bool:
        return self.verdict == "allowed"

    def to_json(self) -> dict[str, Any]:
        statements = (
            []
            if self.decision is None
            else [
                {
                    "index": r.statement.index,
                    "sid": r.statement.sid,
                    "effect": r.statement.effect,
                    "principal": {"matched": r.principal.matched, "reason": r.principal.reason},
                    "action": {"matched": r.action.matched, "reason": r.action.reason},
                    "condition": {"truth": r.condition.truth, "reasons": list(r.condition.reasons)},
                }
                for r in self.decision.results
            ]
        )
        return {
            "verdict": self.verdict,
            "summary": self.summary,
            "statements": statements,
            "findings": [finding.to_json() for finding in self.findings],
        }


def _who(request: Request) -> str:
    return "EC2" if request.principal == EC2_SERVICE else request.principal


def _condition_words(result: StatementResult) -> str:
    return "; ".join(result.condition.reasons)


def _summary(decision: Decision, policy: Policy) -> str:
    request = decision.request
    who, principal, action = _who(request), request.principal, request.action
    if decision.verdict == "invalid":
        first = next(p for p in policy.problems if p.id in REJECTED)
        where = f"statement {first.statement}: " if first.statement else ""
        return (
            f"{who} may not assume this role: IAM rejects this document ({where}{first.text}), "
            "so no role can have it as its trust policy."
        )
    if decision.verdict == "allowed":
        result = decision.deciding[0]
        held = (
            f" (its condition holds: {_condition_words(result)})"
            if result.condition.reasons
            else ""
        )
        return (
            f"{who} may assume this role: {result.statement.name} allows {principal} to call "
            f"{action}{held}."
        )
    if decision.verdict == "denied":
        result = decision.deciding[0]
        return (
            f"{who} may not assume this role: {result.statement.name} denies {principal} "
            f"{action}, and an explicit Deny wins over any Allow."
        )
    if decision.verdict == "unknown":
        result = decision.deciding[0]
        kind = "denies" if result.statement.effect == "Deny" else "allows"
        if len(result.condition.token) == len(result.condition.reasons):
            return (
                f"Whether {who} may assume this role depends on the "
                f"{'SAML assertion' if ':saml-provider/' in principal else 'token'}: "
                f"{result.statement.name} {kind} {action} only with "
                f"{_token_summary(result)}."
            )
        return (
            f"Whether {who} may assume this role is unknown: {result.statement.name} {kind} it "
            f"only under a condition that cannot be judged offline ({_condition_words(result)})."
        )
    if not decision.results:
        return f"{who} may not assume this role: the policy has no statement."
    nearest = _nearest(decision)
    return (
        f"{who} may not assume this role: no statement allows {principal} to call {action} "
        f"({nearest})."
    )


def _token_summary(result: StatementResult) -> str:
    # "... depends on the token: a token from HOST must carry aud = X" -> "a token from HOST"
    issuer = result.condition.reasons[0].split(CLAIMS_MARK, 1)[1].split(" must carry ", 1)[0]
    return f"{issuer} that carries {' and '.join(result.condition.token)}"


def _nearest(decision: Decision) -> str:
    allows = [r for r in decision.results if r.statement.effect == "Allow"] or list(
        decision.results
    )
    for result in allows:
        if result.principal.matched and result.action.matched:
            return f"{result.statement.name}: {_condition_words(result)}"
    for result in allows:
        if result.principal.matched:
            return f"{result.statement.name} {result.action.reason}"
    return f"{allows[0].statement.name} {allows[0].principal.reason}"


def _principal_findings(decision: Decision, severity: Status) -> list[TrustFinding]:
    request = decision.request
    found: list[TrustFinding] = []
    wanted = request.principal
    for result in decision.results:
        statement = result.statement
        if statement.effect != "Allow" or statement.principal is None:
            continue
        services = statement.principal.by_kind.get("Service", ())
        if wanted in services:
            continue  # a near miss beside the right name harms no one
        for name in services:
            if request.kind == "Service" and name == f"{wanted}.cn":
                found.append(
                    TrustFinding(
                        "service-china-partition",
                        severity,
                        f"{statement.name} names {name}, the EC2 principal of the China regions",
                        f"Outside the China regions (aws-cn) EC2 is {wanted}; {name} matches "
                        "nothing there. Name both if the same policy serves both partitions.",
                        f'"Principal": {{"Service": ["{wanted}", "{name}"]}}',
                    )
                )
            elif request.kind == "Service" and (meant := nearest_service(name, wanted)):
                # A misspelling of the principal asked about keeps it out; one of another
                # service's name is worth a warning, and the question's answer stands apart.
                found.append(
                    TrustFinding(
                        "service-misspelled",
                        severity if meant == wanted else "warn",
                        f'{statement.name} names the service "{name}": did you mean {meant}?',
                        "Service principal names are matched exactly; a name that is not a "
                        "service's lets no one in (and IAM refuses a service principal it does "
                        "not know).",
                        f'"Principal": {{"Service": "{meant}"}}'
                        + (f"\n{minimal_fix()}" if meant == wanted == EC2_SERVICE else ""),
                    )
                )
        for kind in ("AWS", "Federated", "CanonicalUser"):
            if request.kind == "Service" and kind != request.kind:
                names = statement.principal.by_kind.get(kind, ())
                if any(name == wanted or nearest_service(name, wanted) == wanted for name in names):
                    found.append(
                        TrustFinding(
                            "service-wrong-key",
                            severity,
                            f"{statement.name} names {wanted} under {kind}, where accounts and "
                            "roles (or identity providers) belong",
                            f"A service is named under Service; under {kind} IAM reads it as "
                            "something else, and rejects it or matches no one.",
                            f'"Principal": {{"Service": "{wanted}"}}\n{minimal_fix()}',
                        )
                    )
    return found


def _wrong_action(request: Request, result: StatementResult) -> TrustFinding:
    statement = result.statement
    summary = f"{statement.name} names {request.principal} but {result.action.reason}"
    if request.kind == "Federated":
        call = default_action(request.principal)
        return TrustFinding(
            "wrong-action",
            "fail",
            summary,
            "The users of an identity provider assume a role with "
            "sts:AssumeRoleWithWebIdentity (OIDC: GitHub Actions, EKS service accounts, "
            f"Cognito, Google...) or sts:AssumeRoleWithSAML (SAML); {request.principal} calls "
            f"{call}, and never sts:AssumeRole.",
            f'"Action": "{call}" in the statement, and ask about that call: --action {call}',
        )
    return TrustFinding(
        "wrong-action",
        "fail",
        summary,
        f"{request.principal} calls {request.action} to assume a role; "
        "sts:AssumeRoleWithWebIdentity and sts:AssumeRoleWithSAML are for federated "
        "users, and sts:TagSession alone lets no one assume the role.",
        f'"Action": "{request.action}"\n{minimal_fix()}',
    )


def _condition_unknown(request: Request, result: StatementResult) -> TrustFinding:
    statement, condition = result.statement, result.condition
    if condition.token and len(condition.token) == len(condition.reasons):
        # Claims of the caller's own token: the condition is what keeps every other subject of
        # the provider out, so it is explained, never offered for removal.
        return TrustFinding(
            "condition-unknown",
            "pass",
            f"{statement.name} lets {request.principal} in only with a token that carries "
            "the claims its condition names",
            "; ".join(condition.reasons),
            "Nothing to change if these are the subjects meant to assume the role. Keep the "
            "condition: without it any token the provider issues (any repository, any service "
            "account, any app user) could assume the role.",
        )
    return TrustFinding(
        "condition-unknown",
        "warn",
        f"{statement.name}'s condition cannot be judged offline",
        _condition_words(result),
        "Check the condition against the service's documentation, or test it: "
        + (
            "launch an instance with the profile and run `imdscreds doctor`."
            if request.principal == EC2_SERVICE
            else f"make the call as {request.principal} and read the error, if any."
        ),
    )


def _unmet_fix(statement: Statement, request: Request) -> str:
    wildcard = statement.principal is not None and (
        statement.principal.anyone or "*" in statement.principal.by_kind.get("AWS", ())
    )
    if wildcard:
        # The condition is all that scopes a wildcard: removing it would trust everyone.
        return (
            "Keep the condition (it is all that scopes the wildcard) and add a statement that "
            f"names {request.principal} itself"
            + (f".\n{minimal_fix()}" if request.principal == EC2_SERVICE else ".")
        )
    return f"Remove that condition from the statement that trusts {request.principal}.\n" + (
        minimal_fix()
    )


def _decision_findings(decision: Decision) -> list[TrustFinding]:
    request = decision.request
    allowed = decision.verdict == "allowed"
    severity: Status = "warn" if allowed else "fail"
    found = _principal_findings(decision, severity)
    # A statement for sts:TagSession or sts:SetSourceIdentity beside one that allows the action
    # asked about is the usual shape, not a wrong action: whatever that other statement's
    # condition decides, this one is not the reason.
    covered = any(
        r.statement.effect == "Allow" and r.principal.matched and r.action.matched
        for r in decision.results
    )
    for result in decision.results:
        statement = result.statement
        if (
            statement.effect == "Allow"
            and result.principal.matched
            and not result.action.matched
            and not allowed
            and not covered
        ):
            found.append(_wrong_action(request, result))
        matched = result.principal.matched and result.action.matched and statement.effect
        if matched and result.condition.truth == "unknown":
            found.append(_condition_unknown(request, result))
        if matched == "Allow" and result.condition.truth == "unmet":
            found.append(
                TrustFinding(
                    "condition-unmet",
                    severity,
                    f"{statement.name} lets {request.principal} in only under a condition it "
                    "cannot meet",
                    _condition_words(result),
                    _unmet_fix(statement, request),
                )
            )
        if matched == "Deny" and result.applies:
            found.append(
                TrustFinding(
                    "deny-matches",
                    "fail",
                    f"{statement.name} denies {request.principal} {request.action}",
                    f"{result.principal.reason}; {result.action.reason}. An explicit Deny wins "
                    "over every Allow.",
                    "Remove the Deny, or narrow its Principal so it no longer matches.",
                )
            )
        anyone = statement.principal is not None and (
            statement.principal.anyone or "*" in statement.principal.by_kind.get("AWS", ())
        )
        if statement.effect == "Allow" and anyone:
            found.append(
                TrustFinding(
                    "anyone-may-assume",
                    "warn" if statement.condition else "fail",
                    f"{statement.name} lets anyone assume the role "
                    + (
                        "(scoped only by its condition)"
                        if statement.condition
                        else "(any AWS account)"
                    ),
                    "A wildcard principal trusts every AWS account in the world; only a "
                    "condition stands between the role and a stranger.",
                    'For an instance role, name EC2 alone: "Principal": {"Service": '
                    '"ec2.amazonaws.com"}.\nIf other principals must assume it, scope the '
                    'wildcard: "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-EXAMPLE"}}\n'
                    'Terraform (aws_iam_policy_document): condition { test = "StringEquals" '
                    'variable = "aws:PrincipalOrgID" values = ["o-EXAMPLE"] }',
                )
            )
    specific = {
        "service-misspelled",
        "service-china-partition",
        "service-wrong-key",
        "wrong-action",
        "condition-unmet",
    }
    if decision.verdict == "not-allowed" and not specific & {
        f.id for f in found if f.status == "fail"
    }:
        found.insert(
            0,
            TrustFinding(
                "ec2-not-trusted",
                "fail",
                f"no statement lets {request.principal} call {request.action}",
                f"The policy trusts: {_trusted(decision) or 'no one'}.",
                minimal_fix(),
            ),
        )
    return found


def _trusted(decision: Decision) -> str:
    return "; ".join(
        r.statement.principal.describe()
        for r in decision.results
        if r.statement.effect == "Allow" and r.statement.principal is not None
    )


def explain_policy(
    document: str | Mapping[str, Any] | Policy, request: Request | None = None
) -> Explanation:
    """Parse (if need be), evaluate and explain a trust policy for ``request`` (EC2 by default)."""
    policy = document if isinstance(document, Policy) else parse_policy(document)
    decision = evaluate(policy, request)
    findings = [problem_finding(problem) for problem in policy.problems]
    if policy.rejected and not policy.statements:
        return Explanation("invalid", _summary(decision, policy), tuple(findings), decision)
    findings.extend(_decision_findings(decision))
    summary = _summary(decision, policy)
    if {p.id for p in policy.problems} & REJECTED == {"byte-order-mark"}:
        # The mark alone stands between the document and IAM: say what the rest would decide.
        content = dataclasses.replace(policy, rejected=False)
        summary += " Once the mark is removed: " + _summary(evaluate(content, request), content)
    seen: set[tuple[str, str]] = set()
    unique = []
    for finding in findings:
        if (finding.id, finding.summary) not in seen:
            seen.add((finding.id, finding.summary))
            unique.append(finding)
    return Explanation(decision.verdict, summary, tuple(unique), decision)
