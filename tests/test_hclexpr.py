"""Terraform expressions evaluated offline: each case's value is what Terraform gives."""

from __future__ import annotations

import pytest

from imdscreds.trust.hclexpr import EvalError, Namespace, Scope, Unknown, evaluate, render_template

VARIABLES = {"enabled": True, "services": ["ec2", "ssm"], "empty": "", "nothing": None, "n": 2}


def _lookup(name: str) -> object:
    if name == "var":
        return Namespace(
            lambda n: VARIABLES[n] if n in VARIABLES else Unknown(f"var.{n} (no default)"),
            indexable=False,
        )
    if name == "data":
        # Every data source's attribute is its address, as text: data.T.N.attr.
        return Namespace(lambda t: Namespace(lambda n: Namespace(lambda a: f"{t}.{n}.{a}")))
    return Namespace(lambda n: Unknown(f"{name}.{n}"))


SCOPE = Scope(_lookup, lambda path: f"<contents of {path}>")

CASES = [
    # conditionals, decided and not
    ('var.enabled ? "yes" : "no"', "yes"),
    ('!var.enabled ? "yes" : "no"', "no"),
    ('var.missing ? "same" : "same"', "same"),  # both branches agree: no need to know
    # indexed and splatted data documents (count and for_each share one body)
    ("data.aws_iam_policy_document.a[0].json", "aws_iam_policy_document.a.json"),
    ('data.aws_iam_policy_document.a["k"].json', "aws_iam_policy_document.a.json"),
    ("one(data.aws_iam_policy_document.a[*].json)", "aws_iam_policy_document.a.json"),
    ('join("", data.aws_iam_policy_document.a.*.json)', "aws_iam_policy_document.a.json"),
    (
        'element(concat(data.aws_iam_policy_document.a.*.json, [""]), 0)',
        "aws_iam_policy_document.a.json",
    ),
    # coalesce skips null and "", try moves past an error
    ('coalesce(var.nothing, var.empty, "third")', "third"),
    ('try(var.services[5], "fallback")', "fallback"),
    ("can(var.services[5])", False),
    # for expressions, templates, escapes
    ('[for s in var.services : "${s}.amazonaws.com"]', ["ec2.amazonaws.com", "ssm.amazonaws.com"]),
    ("{for i, s in var.services : s => i if i > 0}", {"ssm": 1}),
    ('"a\\"b${"c"}d"', 'a"bcd'),
    ('upper("$${literal}")', "${LITERAL}"),
    # arithmetic, comparison, functions
    ("var.n * 3 - 1 == 5 && length(var.services) >= 2", True),
    ('format("%s-%d", "a", var.n)', "a-2"),
    ('merge({a = 1}, {b = "x"})', {"a": 1, "b": "x"}),
    ('lookup({a = 1}, "b", "default")', "default"),
    ('toset(["b", "a", "b"])', ["a", "b"]),
    ('jsonencode({Service = "ec2.amazonaws.com"})', '{"Service":"ec2.amazonaws.com"}'),
    ("coalescelist([], var.services)", ["ec2", "ssm"]),
    ('trimprefix("repo:org/x", "repo:")', "org/x"),
    ('zipmap(["a", "b"], [1, 2])', {"a": 1, "b": 2}),
    ('file("${path.module}/x")', Unknown("path.module", "${path.module}/x")),
]


@pytest.mark.parametrize(("source", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_expression_values(source: str, expected: object) -> None:
    assert evaluate(source, SCOPE) == expected


def test_an_unknown_value_names_what_it_needs_through_every_operation() -> None:
    for source in (
        "var.missing",
        "var.missing == 1",
        "upper(var.missing)",
        "[for s in var.missing : s]",
        "coalesce(var.missing, 1)",
        "var.missing && true",
    ):
        got = evaluate(source, SCOPE)
        assert isinstance(got, Unknown), source
        assert got.needs == "var.missing (no default)"
    # A side that is known can decide && and ||.
    assert evaluate("false && var.missing", SCOPE) is False
    assert evaluate("var.missing || true", SCOPE) is True


def test_a_conditional_on_an_unknown_value_keeps_both_branches() -> None:
    got = evaluate('var.missing == "x" ? "a" : "b"', SCOPE)
    assert isinstance(got, Unknown)
    assert got.branches == (('if var.missing == "x" is true', "a"), ("if false", "b"))


def test_a_template_with_an_unknown_part_keeps_its_known_text() -> None:
    got = render_template("arn:aws:iam::${var.account}:root", SCOPE)
    assert isinstance(got, Unknown)
    assert got.partial == "arn:aws:iam::${var.account (no default)}:root"
    assert render_template("ec2.${data.aws_partition.p.dns_suffix}", SCOPE) == (
        "ec2.aws_partition.p.dns_suffix"
    )


@pytest.mark.parametrize(
    "source", ["var.services[", "(1", '"open', "1 +", "a ? b", "!" * 5000 + "true", "(" * 5000]
)
def test_broken_or_hostile_text_is_an_eval_error_not_a_crash(source: str) -> None:
    with pytest.raises(EvalError):
        evaluate(source, SCOPE)
