"""Condition evaluation against what a request is known to carry: met, unmet, or unknown.

The request context is split in three: keys the request carries (with their values), keys it is
documented never to carry, and everything else, which is *unknown*. An unknown key makes its
condition unknown, with the reason; it is never guessed either way. IAM's rules for a missing key
are applied to the documented-absent ones: a plain operator is false, a negated one (StringNotEquals,
ArnNotLike, NotIpAddress, ...) is true, ``...IfExists`` is true, ``Null: true`` is true, and
``ForAllValues:`` is true while ``ForAnyValue:`` is false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

__all__ = [
    "ConditionResult",
    "RequestContext",
    "Truth",
    "ec2_context",
    "evaluate_condition",
    "glob",
    "token_context",
]

Truth = Literal["met", "unmet", "unknown"]
# In a test's reason: the rest says what the caller's token must carry for the test to hold.
CLAIMS_MARK = "depends on the token: "
Lookup = Literal["present", "absent", "unknown", "token"]

_NEGATED = frozenset(
    {
        "stringnotequals",
        "stringnotequalsignorecase",
        "stringnotlike",
        "arnnotequals",
        "arnnotlike",
        "numericnotequals",
        "datenotequals",
        "notipaddress",
    }
)
_STRING_OPERATORS = frozenset(
    {
        "stringequals",
        "stringnotequals",
        "stringequalsignorecase",
        "stringnotequalsignorecase",
        "stringlike",
        "stringnotlike",
        "arnequals",
        "arnnotequals",
        "arnlike",
        "arnnotlike",
        "bool",
    }
)
_OTHER_OPERATORS = frozenset(
    {
        "numericequals",
        "numericnotequals",
        "numericlessthan",
        "numericlessthanequals",
        "numericgreaterthan",
        "numericgreaterthanequals",
        "dateequals",
        "datenotequals",
        "datelessthan",
        "datelessthanequals",
        "dategreaterthan",
        "dategreaterthanequals",
        "ipaddress",
        "notipaddress",
        "binaryequals",
        "null",
    }
)


@dataclass(frozen=True)
class RequestContext:
    """What a request is known to carry. Keys are lowercase (condition keys are case-insensitive)."""

    present: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    absent: Mapping[str, str] = field(default_factory=dict)  # key -> why the request lacks it
    # Key prefixes the request never carries (a web identity provider's keys, saml:*), and why.
    absent_prefixes: Mapping[str, str] = field(default_factory=dict)
    # Keys whose presence is not documented either way, with the reason to say.
    unknown_reasons: Mapping[str, str] = field(default_factory=dict)
    # Key prefixes whose values are claims of the caller's own token or assertion (a web identity
    # provider's ``PROVIDER:sub``), with what issues it: the caller carries them, with values
    # that depend on the token, so a test on them is neither met nor unmet offline.
    token_prefixes: Mapping[str, str] = field(default_factory=dict)
    who: str = "the request"

    def lookup(self, key: str) -> tuple[Lookup, tuple[str, ...], str]:
        lowered = key.lower()
        if lowered in self.present:
            return "present", self.present[lowered], ""
        for prefix, issuer in self.token_prefixes.items():
            if lowered.startswith(prefix):
                return "token", (), issuer
        if lowered in self.absent:
            return "absent", (), self.absent[lowered]
        for prefix, why in self.absent_prefixes.items():
            if lowered.startswith(prefix):
                return "absent", (), why
        if "." in lowered.split(":", 1)[0]:
            # accounts.google.com:aud, token.actions.githubusercontent.com:sub, ...: a web
            # identity provider's keys, present only in AssumeRoleWithWebIdentity.
            return (
                "absent",
                (),
                "it is a web identity provider's key, present only when a "
                "federated user calls AssumeRoleWithWebIdentity",
            )
        default = f"{self.who} is not documented to carry {key}"
        return "unknown", (), self.unknown_reasons.get(lowered, default)


def ec2_context(service: str = "ec2.amazonaws.com") -> RequestContext:
    """The EC2 service's own AssumeRole call for an instance profile, as documented."""
    no_user = "EC2 assumes the role as a service: no user, no MFA, no session of yours"
    return RequestContext(
        present={
            # Set for every call a service principal makes with its own identity.
            "aws:principalisawsservice": ("true",),
            "aws:principalservicename": (service,),
        },
        absent={
            "aws:multifactorauthpresent": no_user,
            "aws:multifactorauthage": no_user,
            "sts:externalid": "EC2 passes no ExternalId (only a caller of AssumeRole can)",
            "aws:principalorgid": "a service principal belongs to no AWS Organization",
            "aws:principalorgpaths": "a service principal belongs to no AWS Organization",
            "aws:sourceip": "the call comes from EC2 itself, not from an address of yours",
            "aws:sourcevpc": "the call comes from EC2 itself, not through a VPC endpoint of yours",
            "aws:sourcevpce": "the call comes from EC2 itself, not through a VPC endpoint of yours",
            "aws:username": no_user,
            "aws:userid": no_user,
            "aws:federatedprovider": "EC2 is no federated identity",
        },
        absent_prefixes={"saml:": "SAML keys are present only in AssumeRoleWithSAML"},
        unknown_reasons={
            # Other services document these for confused-deputy protection; EC2's instance
            # profile documentation does not say whether EC2 sends them.
            key.lower(): f"EC2 is not documented to send {key} when it assumes a role for an "
            "instance profile (other services document it for confused-deputy protection)"
            for key in (
                "aws:SourceAccount",
                "aws:SourceArn",
                "aws:SourceOrgID",
                "aws:SourceOrgPaths",
            )
        },
        who="EC2's request",
    )


def token_context(provider: str, action: str) -> RequestContext | None:
    """A federated caller's request: the claims its token (or SAML assertion) carries.

    ``provider`` is an identity provider ARN (``arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH``)
    or a provider's name (``accounts.google.com``); None unless ``action`` is the call that
    carries that kind of token.
    """
    lowered = action.lower()
    if ":saml-provider/" in provider:
        if lowered != "sts:assumerolewithsaml":
            return None
        return RequestContext(
            token_prefixes={"saml:": f"a SAML assertion from {provider}"},
            who=f"the SAML request of {provider}",
        )
    if lowered != "sts:assumerolewithwebidentity":
        return None
    host = provider.split(":oidc-provider/", 1)[1] if ":oidc-provider/" in provider else provider
    return RequestContext(
        present={"aws:federatedprovider": (provider,)},
        token_prefixes={f"{host.lower()}:": f"a token from {host}"},
        who=f"the web identity request of {host}",
    )


@dataclass(frozen=True)
class ConditionResult:
    """The whole Condition block: met only if every test is; each test's reason kept.

    ``token`` holds what the caller's token must carry, one entry per test on one of its claims
    (``aud = sts.amazonaws.com``): those tests decide which tokens get in, and are neither met
    nor unmet offline.
    """

    truth: Truth
    reasons: tuple[str, ...]
    token: tuple[str, ...] = ()


@lru_cache(maxsize=4096)
def glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """An IAM wildcard pattern (``*`` any run, ``?`` one character, nothing else special)."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _compare(operator: str, actual: str, expected: str) -> bool:
    if operator in ("stringequals", "stringnotequals", "arnequals", "arnnotequals"):
        return actual == expected
    if operator in ("stringequalsignorecase", "stringnotequalsignorecase", "bool"):
        return actual.lower() == expected.lower()
    return glob(expected, ignore_case=False).fullmatch(actual) is not None  # *Like


def _one_test(
    operator: str, key: str, expected: tuple[str, ...], context: RequestContext
) -> tuple[Truth, str]:
    qualifier = ""
    base = operator
    if ":" in operator:
        qualifier, base = operator.split(":", 1)
        qualifier = qualifier.lower()
    lowered = base.lower()
    if_exists = lowered.endswith("ifexists")
    if if_exists:
        lowered = lowered[: -len("ifexists")]
    if lowered not in _STRING_OPERATORS | _OTHER_OPERATORS or qualifier not in (
        "",
        "forallvalues",
        "foranyvalue",
    ):
        return "unknown", f"{operator} is not an IAM condition operator"
    if "${" in key or "${" in operator:
        return "unknown", f"a condition made from {_unresolved(key + operator)} cannot be judged"
    state, values, why = context.lookup(key)
    test = f"{operator} {key}"
    if state == "token":
        must = _token_words(lowered, key, expected)
        return "unknown", f"{test}: {CLAIMS_MARK}{why} must carry {must}"
    if state == "unknown":
        return "unknown", f"{test}: {why}"
    if lowered == "null":
        wants_absent = any(value.lower() == "true" for value in expected)
        holds = (state == "absent") == wants_absent
        return ("met" if holds else "unmet"), f"{test} = {'/'.join(expected)}: " + (
            f"the key is absent ({why})" if state == "absent" else "the key is present"
        )
    if state == "absent":
        if if_exists or qualifier == "forallvalues" or lowered in _NEGATED:
            return "met", f"{test}: the key is absent ({why}), so the test holds"
        return "unmet", f"{test}: {context.who} cannot meet it ({why})"
    if lowered not in _STRING_OPERATORS:
        return "unknown", f"{test}: imdscreds does not evaluate {base} on a present key"
    if any("${" in value for value in expected):
        marked = next(value for value in expected if "${" in value)
        return "unknown", f"{test}: the value needs {_unresolved(marked)}"
    negated = lowered in _NEGATED
    positive = lowered.replace("not", "", 1) if negated else lowered
    matches = [any(_compare(positive, actual, want) for want in expected) for actual in values]
    if qualifier == "forallvalues":
        holds = all(not m if negated else m for m in matches)
    else:
        hit = any(matches)
        holds = not hit if negated else hit
    shown = ", ".join(values)
    return ("met" if holds else "unmet"), f"{test}: {context.who} carries {shown}, " + (
        "which passes" if holds else f"which fails against {', '.join(expected)}"
    )


def _unresolved(text: str) -> str:
    """What a ``${...}`` marker left by the Terraform reader needs, or the expression itself."""
    found = re.search(r"\$\{([^{}]*)\}", text)
    return found.group(1).strip() if found else text


def _token_words(operator: str, key: str, expected: tuple[str, ...]) -> str:
    """What the token must carry for the test to hold: ``aud = sts.amazonaws.com``."""
    claim = key.rsplit(":", maxsplit=1)[-1]
    wanted = " or ".join(expected)
    if operator == "null":
        return claim if any(v.lower() == "false" for v in expected) else f"no {claim}"
    article = "an" if claim[:1] in "aeiou" else "a"
    if "not" in operator:
        return f"{article} {claim} other than {wanted}"
    if "like" in operator:
        return f"{article} {claim} matching {wanted}"
    return f"{claim} = {wanted}"


def evaluate_condition(
    condition: Mapping[str, Mapping[str, tuple[str, ...]]], context: RequestContext
) -> ConditionResult:
    """Every operator and key must hold (AND); a key's values are alternatives (OR)."""
    if not condition:
        return ConditionResult("met", ())
    results = [
        _one_test(operator, key, values, context)
        for operator, tests in condition.items()
        for key, values in tests.items()
    ]
    truths = {truth for truth, _ in results}
    truth: Truth = "unmet" if "unmet" in truths else "unknown" if "unknown" in truths else "met"
    reasons = tuple(reason for _, reason in results)
    token = tuple(r.split(" must carry ", 1)[1] for r in reasons if CLAIMS_MARK in r)
    return ConditionResult(truth, reasons, token)
