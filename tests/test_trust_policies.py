"""The trust engine against a table of trust policies: each with IAM's verdict and the finding ids.

Verdicts: ``allowed`` (an Allow applies, no Deny), ``denied`` (an explicit Deny applies),
``not-allowed`` (no statement applies: the implicit deny), ``unknown`` (a condition decides it that
cannot be judged offline), ``invalid`` (IAM refuses to store the document). Where AWS's
documentation does not settle a verdict, the case says so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imdscreds.trust import (
    FINDING_IDS,
    Request,
    evaluate,
    explain_policy,
    match_action,
    match_principal,
    parse_policy,
)

V = "2012-10-17"
EC2 = {"Service": "ec2.amazonaws.com"}


def stmt(principal: Any = EC2, action: Any = "sts:AssumeRole", **more: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    statement.update(more)
    return statement


def policy(*statements: dict[str, Any], version: str | None = V) -> dict[str, Any]:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        document["Version"] = version
    return document


# (name, document, verdict, finding ids in order)
CASES: list[tuple[str, Any, str, list[str]]] = [
    # -- healthy ------------------------------------------------------------------------------
    ("minimal", policy(stmt()), "allowed", []),
    ("statement as an object", {"Version": V, "Statement": stmt()}, "allowed", []),
    (
        "service in a list",
        policy(stmt({"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]})),
        "allowed",
        [],
    ),
    (
        "action in a list with TagSession",
        policy(stmt(action=["sts:AssumeRole", "sts:TagSession"])),
        "allowed",
        [],
    ),
    ("sts:* wildcard", policy(stmt(action="sts:*")), "allowed", []),
    ("sts:Assume* wildcard", policy(stmt(action="sts:Assume*")), "allowed", []),
    (
        "sts:AssumeRol? single-character wildcard",
        policy(stmt(action="sts:AssumeRol?")),
        "allowed",
        [],
    ),
    # IAM documents action names as case-insensitive, so this evaluates as allowed; IAM's
    # CreateRole has been reported to reject "sts:assumerole" in a trust policy ("AssumeRole policy
    # may only specify STS AssumeRole actions"): the documentation and that report disagree.
    ("action in lower case", policy(stmt(action="sts:assumerole")), "allowed", []),
    ("action *", policy(stmt(action="*")), "allowed", []),
    ("with a Sid", policy(stmt(Sid="AllowEC2")), "allowed", []),
    (
        "two services, two statements",
        policy(stmt({"Service": "lambda.amazonaws.com"}), stmt()),
        "allowed",
        [],
    ),
    (
        "NotAction that spares AssumeRole",
        policy({"Effect": "Allow", "Principal": EC2, "NotAction": "sts:AssumeRoleWithSAML"}),
        "allowed",
        [],
    ),
    (
        "condition EC2 meets: aws:PrincipalServiceName",
        policy(stmt(Condition={"StringEquals": {"aws:PrincipalServiceName": "ec2.amazonaws.com"}})),
        "allowed",
        [],
    ),
    (
        "condition EC2 meets: PrincipalIsAWSService",
        policy(stmt(Condition={"Bool": {"aws:PrincipalIsAWSService": "true"}})),
        "allowed",
        [],
    ),
    (
        "condition EC2 meets: MFA only IfExists",
        policy(stmt(Condition={"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}})),
        "allowed",
        [],
    ),
    (
        "condition EC2 meets: Null ExternalId",
        policy(stmt(Condition={"Null": {"sts:ExternalId": "true"}})),
        "allowed",
        [],
    ),
    (
        "condition EC2 meets: StringLike on its service name",
        policy(stmt(Condition={"StringLike": {"aws:PrincipalServiceName": "ec2.*"}})),
        "allowed",
        [],
    ),
    (
        # IAM: ForAllValues is true when the key is missing; a service has no organization path.
        "condition EC2 meets: ForAllValues on a missing key",
        policy(
            stmt(Condition={"ForAllValues:StringLike": {"aws:PrincipalOrgPaths": "o-abc123/*"}})
        ),
        "allowed",
        [],
    ),
    (
        "condition EC2 meets: NotIpAddress on a missing key",
        policy(stmt(Condition={"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}})),
        "allowed",
        [],
    ),
    (
        "Deny for someone else",
        policy(
            stmt(),
            {
                "Effect": "Deny",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "sts:AssumeRole",
            },
        ),
        "allowed",
        [],
    ),
    (
        "Deny of another action",
        policy(stmt(), {"Effect": "Deny", "Principal": EC2, "Action": "sts:TagSession"}),
        "allowed",
        [],
    ),
    (
        "China and global principals together",
        policy(stmt({"Service": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]})),
        "allowed",
        [],
    ),
    # -- EC2 kept out ---------------------------------------------------------------------------
    (
        "lambda only",
        policy(stmt({"Service": "lambda.amazonaws.com"})),
        "not-allowed",
        ["ec2-not-trusted"],
    ),
    (
        "an account only",
        policy(stmt({"AWS": "arn:aws:iam::111122223333:root"})),
        "not-allowed",
        ["ec2-not-trusted"],
    ),
    ("no statements", policy(), "not-allowed", ["ec2-not-trusted"]),
    (
        "ecs is another service, not a misspelling",
        policy(stmt({"Service": "ecs.amazonaws.com"})),
        "not-allowed",
        ["ec2-not-trusted"],
    ),
    (
        "misspelled ec2.amazon.com",
        policy(stmt({"Service": "ec2.amazon.com"})),
        "not-allowed",
        ["service-misspelled"],
    ),
    ("bare ec2", policy(stmt({"Service": "ec2"})), "not-allowed", ["service-misspelled"]),
    # Service principal names are compared exactly here; AWS's documentation does not say
    # whether IAM folds their case, and the uppercase form is not a documented principal.
    (
        "EC2 in capitals",
        policy(stmt({"Service": "EC2.amazonaws.com"})),
        "not-allowed",
        ["service-misspelled"],
    ),
    (
        "ec2.amazonaws.co typo",
        policy(stmt({"Service": "ec2.amazonaws.co"})),
        "not-allowed",
        ["service-misspelled"],
    ),
    (
        "China principal outside China",
        policy(stmt({"Service": "ec2.amazonaws.com.cn"})),
        "not-allowed",
        ["service-china-partition"],
    ),
    (
        "service under AWS",
        policy(stmt({"AWS": "ec2.amazonaws.com"})),
        "not-allowed",
        ["service-wrong-key"],
    ),
    (
        "service under Federated",
        policy(stmt({"Federated": "ec2.amazonaws.com"})),
        "not-allowed",
        ["service-wrong-key"],
    ),
    (
        "web identity action",
        policy(stmt(action="sts:AssumeRoleWithWebIdentity")),
        "not-allowed",
        ["wrong-action"],
    ),
    ("SAML action", policy(stmt(action="sts:AssumeRoleWithSAML")), "not-allowed", ["wrong-action"]),
    ("TagSession only", policy(stmt(action="sts:TagSession")), "not-allowed", ["wrong-action"]),
    (
        "NotAction that excludes AssumeRole",
        policy({"Effect": "Allow", "Principal": EC2, "NotAction": "sts:AssumeRole"}),
        "not-allowed",
        ["wrong-action"],
    ),
    (
        "Deny of EC2 beats the Allow",
        policy(stmt(), {"Effect": "Deny", "Principal": EC2, "Action": "sts:*"}),
        "denied",
        ["deny-matches"],
    ),
    (
        "Deny of everyone beats the Allow",
        policy(stmt(), {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}),
        "denied",
        ["deny-matches"],
    ),
    (
        "MFA required",
        policy(stmt(Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "source IP required",
        policy(stmt(Condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "ExternalId required",
        policy(stmt(Condition={"StringEquals": {"sts:ExternalId": "x-123"}})),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "organization required",
        policy(stmt(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}})),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "web identity key required",
        policy(
            stmt(
                Condition={
                    "StringEquals": {
                        "token.actions.githubusercontent.com:sub": "repo:o/r:ref:refs/heads/main"
                    }
                }
            )
        ),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "ForAnyValue on a missing key",
        policy(stmt(Condition={"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": "o-abc123/*"}})),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "wrong service name in a condition",
        policy(
            stmt(Condition={"StringEquals": {"aws:PrincipalServiceName": "lambda.amazonaws.com"}})
        ),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "unique id in place of an ARN",
        policy(stmt({"AWS": "AROAEXAMPLEID1234567"})),
        "not-allowed",
        ["unique-id-principal", "ec2-not-trusted"],
    ),
    # -- not documented either way: unknown, never guessed ---------------------------------------
    # EC2's instance-profile documentation does not say it sends aws:SourceAccount; other
    # services document it for confused-deputy protection. Unknown, said so.
    (
        "SourceAccount condition",
        policy(stmt(Condition={"StringEquals": {"aws:SourceAccount": "123456789012"}})),
        "unknown",
        ["condition-unknown"],
    ),
    (
        "SourceArn condition",
        policy(
            stmt(Condition={"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*:123456789012:instance/*"}})
        ),
        "unknown",
        ["condition-unknown"],
    ),
    (
        "Deny under an unknown condition",
        policy(
            stmt(),
            {
                "Effect": "Deny",
                "Principal": EC2,
                "Action": "sts:AssumeRole",
                "Condition": {"StringNotEquals": {"aws:SourceAccount": "123456789012"}},
            },
        ),
        "unknown",
        ["condition-unknown"],
    ),
    # -- security ------------------------------------------------------------------------------
    # "Principal": "*" and {"AWS": "*"} are documented as equivalent; the documentation does not
    # spell out that they cover service principals, which IAM's "everyone" reading implies.
    ('Principal "*"', policy(stmt("*")), "allowed", ["anyone-may-assume"]),
    ('{"AWS": "*"}', policy(stmt({"AWS": "*"})), "allowed", ["anyone-may-assume"]),
    (
        '"*" scoped by an organization',
        policy(stmt("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}})),
        "not-allowed",
        ["condition-unmet", "anyone-may-assume"],
    ),
    # IAM advises against NotPrincipal; whether it accepts one in a trust policy at all is not
    # clear from its documentation. Evaluated by its meaning: everyone but the listed.
    (
        "NotPrincipal with Allow",
        policy(
            {
                "Effect": "Allow",
                "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "sts:AssumeRole",
            }
        ),
        "allowed",
        ["not-principal"],
    ),
    # -- the document itself ---------------------------------------------------------------------
    ("no Version", policy(stmt(), version=None), "allowed", ["version-missing"]),
    ("old Version", policy(stmt(), version="2008-10-17"), "allowed", ["version-old"]),
    ("Resource element", policy(stmt(Resource="*")), "invalid", ["resource-element"]),
    (
        "Effect miscased",
        policy({"Effect": "allow", "Principal": EC2, "Action": "sts:AssumeRole"}),
        "invalid",
        ["effect-invalid"],
    ),
    (
        "Effect missing",
        policy({"Principal": EC2, "Action": "sts:AssumeRole"}),
        "invalid",
        ["effect-invalid"],
    ),
    (
        "principal miscased",
        policy({"Effect": "Allow", "principal": EC2, "Action": "sts:AssumeRole"}),
        "invalid",
        ["key-miscased", "principal-missing"],
    ),
    (
        "service miscased",
        policy(stmt({"service": "ec2.amazonaws.com"})),
        "invalid",
        ["key-miscased"],
    ),
    (
        "invalid JSON",
        '{"Version": "2012-10-17",\n "Statement": [{"Effect": "Allow",}]}',
        "invalid",
        ["invalid-json"],
    ),
    ("not an object", "[1, 2]", "invalid", ["not-a-policy"]),
]


def test_the_table_is_large_and_covers_every_policy_finding() -> None:
    assert len(CASES) >= 40
    seen = {finding for *_, ids in CASES for finding in ids}
    terraform_only = {"unresolved", "no-permission-policy", "no-instance-profile"}
    # Findings for documents IAM cannot read at all are exercised in test_trust_model below.
    structural = {
        "principal-invalid",
        "action-invalid",
        "condition-invalid",
        "statement-invalid",
        "unknown-element",
    }
    assert set(FINDING_IDS) - terraform_only - structural <= seen, set(FINDING_IDS) - seen


@pytest.mark.parametrize(("name", "document", "verdict", "ids"), CASES, ids=[c[0] for c in CASES])
def test_verdict_and_findings(name: str, document: Any, verdict: str, ids: list[str]) -> None:
    explanation = explain_policy(document)
    assert explanation.verdict == verdict, explanation.summary
    assert [finding.id for finding in explanation.findings] == ids, explanation.findings


@pytest.mark.parametrize(
    ("name", "document"), [(c[0], c[1]) for c in CASES if c[2] == "allowed" and not c[3]]
)
def test_a_healthy_policy_gives_no_warning(name: str, document: Any) -> None:
    explanation = explain_policy(document)
    assert explanation.findings == ()
    assert explanation.summary.startswith("EC2 may assume this role: statement ")


def test_the_answer_names_the_statement_that_lets_ec2_in() -> None:
    explanation = explain_policy(
        policy(stmt({"Service": "lambda.amazonaws.com"}), stmt(Sid="Instances"))
    )
    assert explanation.summary == (
        'EC2 may assume this role: statement 2 ("Instances") allows ec2.amazonaws.com to call '
        "sts:AssumeRole."
    )


def test_a_condition_ec2_meets_is_explained_not_flagged() -> None:
    explanation = explain_policy(
        policy(stmt(Condition={"StringEquals": {"aws:PrincipalServiceName": "ec2.amazonaws.com"}}))
    )
    assert explanation.verdict == "allowed"
    assert "its condition holds" in explanation.summary
    assert explanation.findings == ()


def test_an_unmet_condition_says_why_ec2_cannot_meet_it() -> None:
    explanation = explain_policy(policy(stmt(Condition={"StringEquals": {"sts:ExternalId": "x"}})))
    assert "EC2 passes no ExternalId" in explanation.findings[0].detail  # type: ignore[operator]


def test_invalid_json_names_line_and_column() -> None:
    explanation = explain_policy('{\n  "Version": "2012-10-17",\n  "Statement": [,]\n}')
    assert "at line 3, column 17" in explanation.findings[0].summary


def test_someone_else_may_be_asked_about() -> None:
    document = policy(stmt({"AWS": "arn:aws:iam::111122223333:root"}), stmt())
    account_role = Request(principal="arn:aws:iam::111122223333:role/deployer")
    assert explain_policy(document, account_role).verdict == "allowed"
    assert (
        explain_policy(document, Request(principal="lambda.amazonaws.com")).verdict == "not-allowed"
    )
    assert explain_policy(document, Request(action="sts:TagSession")).verdict == "not-allowed"


def test_matching_is_three_small_functions_with_reasons() -> None:
    parsed = parse_policy(policy(stmt(action="sts:Assume*")))
    statement = parsed.statements[0]
    principal = match_principal(statement, Request())
    action = match_action(statement, Request())
    assert (principal.matched, principal.reason) == (True, "names Service: ec2.amazonaws.com")
    assert (action.matched, action.reason) == (True, "lets sts:AssumeRole through sts:Assume*")
    decision = evaluate(parsed)
    assert decision.verdict == "allowed"
    assert decision.deciding[0].statement is statement


@pytest.mark.parametrize(
    ("document", "finding"),
    [
        (policy(stmt({"Service": 5})), "principal-invalid"),
        (policy(stmt(action=7)), "action-invalid"),
        (policy(stmt(Condition=["x"])), "condition-invalid"),
        (policy("not a statement"), "statement-invalid"),  # type: ignore[arg-type]
        (policy(stmt(Extra=1)), "unknown-element"),
    ],
)
def test_trust_model_rejects_what_iam_rejects(document: Any, finding: str) -> None:
    explanation = explain_policy(document)
    assert explanation.verdict == "invalid"
    assert finding in [f.id for f in explanation.findings]
    assert all(f.fix for f in explanation.findings if f.status == "fail")


# Anything JSON can hold, nested a little: what a hostile or broken document may be.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
element_names = st.sampled_from(
    ["Version", "Statement", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
     "Condition", "Resource", "Service", "AWS", "principal", "Allow", "Deny", "*"]
)  # fmt: skip
policy_like = st.dictionaries(
    element_names,
    st.recursive(
        st.sampled_from(["Allow", "Deny", "*", "sts:AssumeRole", "ec2.amazonaws.com", V])
        | json_values,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(element_names, inner, max_size=4)
        ),
        max_leaves=16,
    ),
    max_size=5,
)


@given(document=policy_like | json_values)
@settings(max_examples=150, deadline=None)
def test_any_document_gets_a_verdict_never_an_exception(document: Any) -> None:
    explanation = explain_policy(json.dumps(document))
    assert explanation.verdict in ("allowed", "denied", "not-allowed", "unknown", "invalid")
    assert explanation.summary
    if explanation.verdict == "allowed":
        assert explanation.decision is not None
        assert explanation.decision.deciding


@given(text=st.text(max_size=40))
@settings(max_examples=100, deadline=None)
def test_any_text_gets_a_verdict_never_an_exception(text: str) -> None:
    assert explain_policy(text).verdict in (
        "allowed",
        "denied",
        "not-allowed",
        "unknown",
        "invalid",
    )
