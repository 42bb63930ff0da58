"""The trust engine against a table of trust policies: each with IAM's verdict and the finding ids.

Verdicts: ``allowed`` (an Allow applies, no Deny), ``denied`` (an explicit Deny applies),
``not-allowed`` (no statement applies: the implicit deny), ``unknown`` (a condition decides it that
cannot be judged offline), ``invalid`` (IAM refuses to store the document). Where AWS's
documentation does not settle a verdict, the case says so.
"""

from __future__ import annotations

import json
from pathlib import Path
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
from imdscreds.trust.evaluate import default_action
from imdscreds.trust.services import KNOWN_SERVICES, nearest_service

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
    # -- what IAM rejects that a reader's eye passes over ----------------------------------------
    (
        "service with a leading space",
        policy(stmt({"Service": " ec2.amazonaws.com"})),
        "invalid",
        ["principal-invalid"],
    ),
    (
        "UTF-8 byte order mark",
        "\ufeff" + json.dumps(policy(stmt())),
        "invalid",
        ["byte-order-mark"],
    ),
    # -- a statement beside the one that decides --------------------------------------------------
    (
        "TagSession beside an AssumeRole whose condition EC2 cannot meet",
        policy(
            stmt(Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
            stmt(action=["sts:TagSession", "sts:SetSourceIdentity"]),
        ),
        "not-allowed",
        ["condition-unmet"],
    ),
    (
        "SetSourceIdentity beside an AssumeRole on an unknown key",
        policy(
            stmt(Condition={"StringEquals": {"aws:SourceAccount": "111122223333"}}),
            stmt(action="sts:SetSourceIdentity"),
        ),
        "unknown",
        ["condition-unknown"],
    ),
    (
        "another service misspelled",
        policy(stmt({"Service": "lamda.amazonaws.com"})),
        "not-allowed",
        ["ec2-not-trusted", "service-misspelled"],
    ),
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


REAL_SERVICES = ["es", "ds", "dax", "sms", "ses", "ecr", "kms", "efs", "iam", "ecs", "eks"]


@pytest.mark.parametrize("name", REAL_SERVICES)
def test_a_real_service_near_ec2_is_not_a_misspelling(name: str) -> None:
    document = policy(stmt({"Service": f"{name}.amazonaws.com"}))
    explanation = explain_policy(document)
    assert [f.id for f in explanation.findings] == ["ec2-not-trusted"]
    assert f"{name}.amazonaws.com" in explanation.summary
    assert f"{name}.amazonaws.com" in KNOWN_SERVICES


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("ec2.amazon.com", "ec2.amazonaws.com"),
        ("ec3.amazonaws.com", "ec2.amazonaws.com"),  # as near ecs and ecr: the asked one wins
        ("lamda.amazonaws.com", "lambda.amazonaws.com"),
        ("ecs-task.amazonaws.com", "ecs-tasks.amazonaws.com"),
        ("sagemker.amazonaws.com", "sagemaker.amazonaws.com"),
        ("es", "es.amazonaws.com"),
        ("ec2.example.com", None),  # someone else's domain
        ("zzz.amazonaws.com", None),  # near nothing
        ("ec2.amazonaws.com.cn", None),  # the China partition, its own finding
    ],
)
def test_a_misspelling_suggests_the_nearest_real_service(name: str, meant: str | None) -> None:
    assert nearest_service(name, "ec2.amazonaws.com") == meant
    findings = explain_policy(policy(stmt({"Service": name}))).findings
    said = [f.summary for f in findings if f.id == "service-misspelled"]
    assert said == (
        [] if meant is None else [f'statement 1 names the service "{name}": did you mean {meant}?']
    )


def test_tag_session_beside_assume_role_is_no_finding_whatever_the_verdict() -> None:
    document = policy(stmt(), stmt(action="sts:TagSession"))
    assert explain_policy(document).findings == ()
    alone = explain_policy(policy(stmt(action="sts:TagSession")))
    assert [f.id for f in alone.findings] == ["wrong-action"]


def test_spaces_around_a_principal_are_rejected_with_the_name_to_write() -> None:
    (finding,) = explain_policy(policy(stmt({"Service": "ec2.amazonaws.com "}))).findings
    assert (finding.id, finding.status) == ("principal-invalid", "fail")
    assert "MalformedPolicyDocument" in finding.summary
    assert finding.fix == 'Write the name without the spaces: "Service": "ec2.amazonaws.com"'


def test_a_byte_order_mark_is_read_past_and_reported() -> None:
    explanation = explain_policy("\ufeff" + json.dumps(policy(stmt())))
    (finding,) = explanation.findings
    assert finding.status == "fail"
    assert "byte order mark" in finding.summary
    assert "MalformedPolicyDocument" in finding.summary
    assert finding.fix is not None
    assert "without a BOM" in finding.fix
    assert explanation.summary.endswith(
        "Once the mark is removed: EC2 may assume this role: statement 1 allows "
        "ec2.amazonaws.com to call sts:AssumeRole."
    )


GITHUB = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
EKS = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
WEB = "sts:AssumeRoleWithWebIdentity"


@pytest.mark.parametrize(
    ("provider", "prefix", "condition", "carries"),
    [
        (
            GITHUB,
            "token.actions.githubusercontent.com",
            {
                "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                "StringLike": {"token.actions.githubusercontent.com:sub": "repo:octo/app:*"},
            },
            "aud = sts.amazonaws.com and a sub matching repo:octo/app:*",
        ),
        (
            EKS,
            "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
            {
                "StringEquals": {
                    "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub": (
                        "system:serviceaccount:default:app"
                    ),
                    "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud": (
                        "sts.amazonaws.com"
                    ),
                }
            },
            "sub = system:serviceaccount:default:app and aud = sts.amazonaws.com",
        ),
        (
            "cognito-identity.amazonaws.com",
            "cognito-identity.amazonaws.com",
            {
                "StringEquals": {"cognito-identity.amazonaws.com:aud": "us-east-1:pool"},
                "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"},
            },
            "aud = us-east-1:pool and an amr matching authenticated",
        ),
        (
            "accounts.google.com",
            "accounts.google.com",
            {"StringEquals": {"accounts.google.com:aud": "123.apps.googleusercontent.com"}},
            "aud = 123.apps.googleusercontent.com",
        ),
        (
            "graph.facebook.com",
            "graph.facebook.com",
            {"StringEquals": {"graph.facebook.com:app_id": "1234567890"}},
            "app_id = 1234567890",
        ),
        (
            "www.amazon.com",
            "www.amazon.com",
            {"StringEquals": {"www.amazon.com:app_id": "amzn1.application-oa2-client.1"}},
            "app_id = amzn1.application-oa2-client.1",
        ),
    ],
)
def test_a_web_identity_callers_own_claims_depend_on_the_token(
    provider: str, prefix: str, condition: dict[str, Any], carries: str
) -> None:
    document = policy(stmt({"Federated": provider}, WEB, Condition=condition))
    request = Request(principal=provider, action=WEB)
    assert request.kind == "Federated"
    explanation = explain_policy(document, request)
    assert explanation.verdict == "unknown"
    assert explanation.summary == (
        f"Whether {provider} may assume this role depends on the token: statement 1 allows "
        f"{WEB} only with a token from {prefix} that carries {carries}."
    )
    (finding,) = explanation.findings
    assert (finding.id, finding.status) == ("condition-unknown", "pass")
    words = json.dumps(explanation.to_json()).lower()
    assert "absent" not in words
    assert "remove" not in words
    assert "keep the condition" in (finding.fix or "").lower()
    # Asked with sts:AssumeRole, the answer is the call, not the condition.
    plain = explain_policy(document, Request(principal=provider))
    assert [f.id for f in plain.findings] == ["wrong-action"]
    assert f"--action {WEB}" in (plain.findings[0].fix or "")
    assert "Service" not in json.dumps(plain.to_json())


def test_another_providers_keys_are_absent_from_a_web_identity_request() -> None:
    condition = {"StringEquals": {"accounts.google.com:aud": "x"}}
    document = policy(stmt({"Federated": GITHUB}, WEB, Condition=condition))
    explanation = explain_policy(document, Request(principal=GITHUB, action=WEB))
    assert explanation.verdict == "not-allowed"
    assert [f.id for f in explanation.findings] == ["condition-unmet"]


# -- tests/trust_cases/*.json: real-world-shaped trust policies, each checked by hand --------------
JSON_CASES_DIR = Path(__file__).resolve().parent / "trust_cases"
SAML_IDP = "arn:aws:iam::123456789012:saml-provider/ExampleOrgSSOProvider"
EKS_IRSA = (
    "arn:aws:iam::123456789012:oidc-provider/"
    "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
)
OUTSIDER = "arn:aws:iam::444455556666:role/ci"
Answer = tuple[str, list[str]]  # verdict, finding ids in order
NOT_EC2: Answer = ("not-allowed", ["ec2-not-trusted"])
TOKEN: Answer = ("unknown", ["condition-unknown"])  # depends on the token: a "pass" finding

# file stem -> (EC2's answer, (another principal, its answer) or None, why: the hand-check)
JSON_CASES: dict[str, tuple[Answer, tuple[str, Answer] | None, str]] = {
    "ec2_minimal": (("allowed", []), None, "The IAM User Guide's EC2 role: Allow, Service ec2."),
    "ec2_with_sid_and_list_action": (
        ("allowed", []),
        None,
        "Action as a one-item list and a Sid change nothing: a list is OR of its items.",
    ),
    "ec2_source_account": (
        ("unknown", ["condition-unknown"]),
        None,
        "EC2's instance-profile documentation does not say that EC2 sends aws:SourceAccount; "
        "StringEquals on a missing key is false, on a present one it depends: not guessed.",
    ),
    "ec2_source_arn_if_exists": (
        ("unknown", ["condition-unknown"]),
        None,
        "ArnLikeIfExists is true if the key is missing, and tests the value if present; whether "
        "EC2 sends aws:SourceArn is undocumented, and its value (an instance ARN?) too.",
    ),
    "ec2_source_ip": (
        ("not-allowed", ["condition-unmet"]),
        None,
        "aws:SourceIp is absent when a service calls with its own identity; IpAddress on a "
        "missing key is false, so the only Allow never applies.",
    ),
    "ec2_and_ssm": (
        ("allowed", []),
        ("ssm.amazonaws.com", ("allowed", [])),
        "A list of services is OR: either service matches the one statement.",
    ),
    "ec2_china_and_global": (
        ("allowed", []),
        None,
        "ec2.amazonaws.com.cn beside ec2.amazonaws.com: one policy for both partitions.",
    ),
    "ec2_tag_session_separate": (
        ("allowed", []),
        None,
        "TagSession and SetSourceIdentity in their own statement are the usual shape (session "
        "tags); AssumeRole is allowed by statement 1, no wrong action anywhere.",
    ),
    "ec2_sts_wildcard": (("allowed", []), None, "sts:* matches sts:AssumeRole (a glob)."),
    "ec2_version_2008": (
        ("allowed", ["version-old"]),
        None,
        "IAM still accepts 2008-10-17 (without policy variables); the statement allows EC2.",
    ),
    "ec2_space_in_principal": (
        ("invalid", ["principal-invalid"]),
        None,
        '"ec2.amazonaws.com " is no principal IAM knows: CreateRole answers '
        "MalformedPolicyDocument (Invalid principal in policy).",
    ),
    "ec2_byte_order_mark": (
        ("invalid", ["byte-order-mark"]),
        None,
        "The file begins with EF BB BF: not JSON text (RFC 8259); IAM rejects it as "
        "malformed. Read past the mark, the policy is the minimal one.",
    ),
    "lambda_execution": (
        NOT_EC2,
        ("lambda.amazonaws.com", ("allowed", [])),
        "The Lambda execution role of the Lambda guide: only lambda.amazonaws.com.",
    ),
    "ecs_tasks_confused_deputy": (
        NOT_EC2,
        ("ecs-tasks.amazonaws.com", ("unknown", ["condition-unknown"])),
        "The ECS guide's confused-deputy form: ArnLike aws:SourceArn + StringEquals "
        "aws:SourceAccount; their values come with the task's call, not known offline.",
    ),
    "service_linked_elb": (
        NOT_EC2,
        ("elasticloadbalancing.amazonaws.com", ("allowed", [])),
        "A service-linked role's trust: a real service, not a misspelling of ec2.",
    ),
    "backup_default_role": (
        NOT_EC2,
        ("backup.amazonaws.com", ("allowed", [])),
        "AWS Backup's default service role.",
    ),
    "opensearch_cognito": (
        NOT_EC2,
        ("es.amazonaws.com", ("allowed", [])),
        "es and opensearchservice are OpenSearch's principals; es is two letters from ec2 but "
        "real, so no 'did you mean'.",
    ),
    "github_actions_oidc": (
        NOT_EC2,
        (GITHUB, TOKEN),
        "GitHub's guide: AssumeRoleWithWebIdentity, aud = sts.amazonaws.com and one sub; both "
        "keys come from the caller's token, so the answer depends on the token.",
    ),
    "github_actions_oidc_wildcard": (
        NOT_EC2,
        (GITHUB, TOKEN),
        "StringLike sub repo:octo-org/*: any repository of the organisation's tokens.",
    ),
    "eks_irsa": (
        NOT_EC2,
        (EKS_IRSA, TOKEN),
        "EKS IRSA: the cluster's OIDC provider; sub names the service account, aud is sts.",
    ),
    "cognito_authenticated": (
        NOT_EC2,
        ("cognito-identity.amazonaws.com", TOKEN),
        "The Cognito identity pool role: aud is the pool, amr 'authenticated'; Cognito is a "
        "Federated principal given by name.",
    ),
    "google_web_identity": (
        NOT_EC2,
        ("accounts.google.com", TOKEN),
        "The IAM guide's Google example: aud is the app's client id.",
    ),
    "saml_federation": (
        NOT_EC2,
        (SAML_IDP, TOKEN),
        "The IAM guide's SAML 2.0 role: AssumeRoleWithSAML (and TagSession), SAML:aud from the "
        "assertion.",
    ),
    "cross_account_external_id": (
        NOT_EC2,
        ("arn:aws:iam::111122223333:role/Partner", ("unknown", ["condition-unknown"])),
        "A third party's account root with sts:ExternalId: the account's role matches through "
        ":root; whether its call passes the ExternalId is the caller's choice.",
    ),
    "cross_account_mfa": (
        NOT_EC2,
        ("arn:aws:iam::111122223333:user/alice", ("unknown", ["condition-unknown"])),
        "Bool aws:MultiFactorAuthPresent true: depends on the user's session.",
    ),
    "same_account_role": (
        NOT_EC2,
        ("arn:aws:iam::123456789012:role/deployer", ("allowed", [])),
        "A role ARN, named exactly.",
    ),
    "org_wide_any_principal": (
        ("not-allowed", ["condition-unmet", "anyone-may-assume"]),
        (OUTSIDER, ("unknown", ["condition-unknown", "anyone-may-assume"])),
        '{"AWS": "*"} matches EC2 too, but aws:PrincipalOrgID is absent for a service: the '
        "condition fails. The fix keeps the condition (it scopes the wildcard).",
    ),
    "anyone_no_condition": (
        ("allowed", ["anyone-may-assume"]),
        None,
        'Principal "*" with no condition: every AWS account in the world.',
    ),
    "deny_outside_org": (
        ("denied", ["deny-matches"]),
        (OUTSIDER, ("not-allowed", ["ec2-not-trusted", "condition-unknown"])),
        "The data-perimeter Deny without a service exemption: PrincipalOrgID is absent for EC2, "
        "StringNotEquals on a missing key is true, so the Deny applies and wins.",
    ),
    "deny_outside_org_services_exempt": (
        ("allowed", []),
        None,
        "The same Deny with BoolIfExists aws:PrincipalIsAWSService false: EC2 carries true, "
        "the Deny's condition fails, statement 1 allows.",
    ),
    "not_principal_deny": (
        ("denied", ["not-principal", "deny-matches"]),
        None,
        "Deny with NotPrincipal naming one account denies every other principal, EC2 too.",
    ),
}


def test_the_json_corpus_is_the_table() -> None:
    assert len(JSON_CASES) >= 25
    assert sorted(JSON_CASES) == sorted(p.stem for p in JSON_CASES_DIR.glob("*.json"))


@pytest.mark.parametrize("name", sorted(JSON_CASES))
def test_json_corpus_verdicts(name: str) -> None:
    (verdict, ids), other, why = JSON_CASES[name]
    assert why
    text = (JSON_CASES_DIR / f"{name}.json").read_text(encoding="utf-8")
    explanation = explain_policy(text)
    assert (explanation.verdict, [f.id for f in explanation.findings]) == (verdict, ids)
    if other is not None:
        principal, answer = other
        verdict, ids = answer
        request = Request(principal=principal, action=default_action(principal))
        explanation = explain_policy(text, request)
        got = (explanation.verdict, [f.id for f in explanation.findings])
        assert got == (verdict, ids), explanation.summary
        if answer is TOKEN:
            assert explanation.findings[0].status == "pass"
            assert "depends on the" in explanation.summary
