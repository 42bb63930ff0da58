"""A trust (assume-role) policy as data: parsed once, with what IAM would reject noted beside it.

Parsing never raises for a bad document: IAM's own answer to a bad document is a rejection with a
reason, and the explanation needs that reason. Each problem becomes a ``Problem`` (a finding id and
the words for it), and the parsed statements keep only what IAM would read: an element whose name
is miscased (``principal``) is absent, as it is to IAM, which refuses unknown elements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CURRENT_VERSION",
    "Policy",
    "Principals",
    "Problem",
    "Statement",
    "parse_policy",
]

CURRENT_VERSION = "2012-10-17"
_OLD_VERSION = "2008-10-17"
_BOM = "\ufeff"
_TOP_KEYS = ("Version", "Id", "Statement")
_STATEMENT_KEYS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_PRINCIPAL_KINDS = ("AWS", "Service", "Federated", "CanonicalUser")
# IAM unique ids (role AROA, user AIDA, group AGPA, ...): IAM shows one where a principal was
# deleted; the id of a deleted principal matches no one, not even a new principal of that name.
_UNIQUE_ID = re.compile(r"^A(RO|ID|GP|NP|IP|SC)A[A-Z0-9]{12,}$")


@dataclass(frozen=True)
class Problem:
    """Something in the document IAM would reject or a reader should change; ``id`` is a finding id."""

    id: str
    statement: int | None  # 1-based, None for the document as a whole
    text: str
    fix: str | None = None  # when the fix depends on the document (the name to write instead)


@dataclass(frozen=True)
class Principals:
    """A ``Principal`` (or ``NotPrincipal``) value: ``"*"``, or kinds (AWS, Service, ...) to names."""

    anyone: bool = False
    by_kind: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.anyone:
            return '"*" (anyone)'
        parts = [f"{kind}: {', '.join(names)}" for kind, names in self.by_kind.items()]
        return "; ".join(parts) or "no one"


@dataclass(frozen=True)
class Statement:
    """One statement as IAM reads it. ``index`` is 1-based, as people count."""

    index: int
    sid: str | None
    effect: str | None  # "Allow", "Deny", or None when missing or invalid (IAM rejects it)
    principal: Principals | None
    not_principal: Principals | None
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    # operator -> key -> values, all as strings (IAM compares JSON booleans and numbers as text)
    condition: Mapping[str, Mapping[str, tuple[str, ...]]]

    @property
    def name(self) -> str:
        """``statement 2`` or ``statement 2 ("AllowEC2")``."""
        return f'statement {self.index} ("{self.sid}")' if self.sid else f"statement {self.index}"


@dataclass(frozen=True)
class Policy:
    """The parsed document, its statements and every problem found while reading it."""

    version: str | None
    statements: tuple[Statement, ...]
    problems: tuple[Problem, ...]
    # True when IAM would refuse to store the document at all (bad JSON, a prohibited element...)
    rejected: bool


def _strings(value: object) -> tuple[str, ...] | None:
    """A string or a list of strings, as IAM accepts for most elements; None for anything else."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _keys(
    mapping: Mapping[str, Any], known: tuple[str, ...], where: int | None, problems: list[Problem]
) -> dict[str, Any]:
    """The elements IAM recognises; a miscased or unknown name is a problem and is left out."""
    found: dict[str, Any] = {}
    lowered = {name.lower(): name for name in known}
    for key, value in mapping.items():
        if key in known:
            found[key] = value
        elif key.lower() in lowered:
            problems.append(
                Problem(
                    "key-miscased",
                    where,
                    f'"{key}" must be written "{lowered[key.lower()]}": element names are '
                    "case-sensitive, and IAM rejects a policy with an unknown element",
                )
            )
        else:
            problems.append(
                Problem("unknown-element", where, f'"{key}" is not an element of a trust policy')
            )
    return found


def _principals(
    value: object, element: str, where: int, problems: list[Problem]
) -> Principals | None:
    if value == "*":
        return Principals(anyone=True)
    if not isinstance(value, Mapping):
        problems.append(
            Problem(
                "principal-invalid",
                where,
                f'{element} must be "*" or an object such as {{"Service": "ec2.amazonaws.com"}}',
            )
        )
        return None
    by_kind: dict[str, tuple[str, ...]] = {}
    for kind, names in _keys(value, _PRINCIPAL_KINDS, where, problems).items():
        listed = _strings(names)
        if listed is None:
            problems.append(
                Problem("principal-invalid", where, f"{element}.{kind} must be a string or a list")
            )
            continue
        by_kind[kind] = listed
        for name in listed:
            if name != name.strip():
                problems.append(
                    Problem(
                        "principal-invalid",
                        where,
                        f"{element}.{kind} holds {json.dumps(name)}, with spaces around the "
                        "name: IAM matches principals exactly and rejects this one "
                        "(MalformedPolicyDocument: Invalid principal in policy)",
                        f'Write the name without the spaces: "{kind}": {json.dumps(name.strip())}',
                    )
                )
            if kind == "AWS" and _UNIQUE_ID.match(name):
                problems.append(
                    Problem(
                        "unique-id-principal",
                        where,
                        f'{element}.AWS holds the unique id "{name}" where an ARN belongs: IAM '
                        "shows an id in place of a principal that was deleted, and it matches no "
                        "one now, not even a new principal of the same name",
                    )
                )
    return Principals(by_kind=by_kind)


def _condition(
    value: object, where: int, problems: list[Problem]
) -> dict[str, dict[str, tuple[str, ...]]]:
    if not isinstance(value, Mapping):
        problems.append(Problem("condition-invalid", where, "Condition must be an object"))
        return {}
    parsed: dict[str, dict[str, tuple[str, ...]]] = {}
    for operator, tests in value.items():
        if not isinstance(tests, Mapping):
            problems.append(
                Problem("condition-invalid", where, f"Condition.{operator} must be an object")
            )
            continue
        parsed[operator] = {}
        for key, values in tests.items():
            items = values if isinstance(values, list) else [values]
            texts = [_scalar_text(item) for item in items]
            if any(text is None for text in texts):
                problems.append(
                    Problem(
                        "condition-invalid",
                        where,
                        f"Condition.{operator}.{key} must be a string, number, boolean or a list",
                    )
                )
                continue
            parsed[operator][key] = tuple(text for text in texts if text is not None)
    return parsed


def _statement(index: int, raw: object, problems: list[Problem]) -> Statement | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem("statement-invalid", index, "a statement must be an object"))
        return None
    elements = _keys(raw, _STATEMENT_KEYS, index, problems)
    effect = elements.get("Effect")
    if effect not in ("Allow", "Deny"):
        said = "is missing" if effect is None else f"is {json.dumps(effect)}"
        problems.append(
            Problem(
                "effect-invalid",
                index,
                f'Effect {said}: it must be exactly "Allow" or "Deny" (case-sensitive)',
            )
        )
        effect = None
    for prohibited in ("Resource", "NotResource"):
        if prohibited in elements:
            problems.append(
                Problem(
                    "resource-element",
                    index,
                    f"{prohibited} has no place in a trust policy: the resource is the role "
                    "itself, and IAM rejects the document (MalformedPolicyDocument)",
                )
            )
    principal = not_principal = None
    if "Principal" in elements:
        principal = _principals(elements["Principal"], "Principal", index, problems)
    if "NotPrincipal" in elements:
        not_principal = _principals(elements["NotPrincipal"], "NotPrincipal", index, problems)
        problems.append(
            Problem(
                "not-principal",
                index,
                "NotPrincipal matches everyone it does not list; IAM advises against it, and in "
                "a trust policy it lets in far more than it names",
            )
        )
    if principal is None and not_principal is None and "Principal" not in elements:
        problems.append(
            Problem("principal-missing", index, "a trust policy statement needs a Principal")
        )
    actions = not_actions = None
    for element in ("Action", "NotAction"):
        if element in elements:
            listed = _strings(elements[element])
            if listed is None:
                problems.append(
                    Problem("action-invalid", index, f"{element} must be a string or a list")
                )
            elif element == "Action":
                actions = listed
            else:
                not_actions = listed
    if "Action" not in elements and "NotAction" not in elements:
        problems.append(Problem("action-invalid", index, "a statement needs an Action"))
    sid = elements.get("Sid")
    return Statement(
        index=index,
        sid=sid if isinstance(sid, str) and sid else None,
        effect=effect,
        principal=principal,
        not_principal=not_principal,
        actions=actions,
        not_actions=not_actions,
        condition=_condition(elements["Condition"], index, problems)
        if "Condition" in elements
        else {},
    )


# Problems after which IAM refuses to store the document (CreateRole/UpdateAssumeRolePolicy fail).
REJECTED = frozenset(
    {
        "byte-order-mark",
        "invalid-json",
        "not-a-policy",
        "key-miscased",
        "unknown-element",
        "effect-invalid",
        "resource-element",
        "principal-invalid",
        "principal-missing",
        "action-invalid",
        "condition-invalid",
        "statement-invalid",
    }
)


def _json_error(exc: json.JSONDecodeError) -> Problem:
    return Problem(
        "invalid-json",
        None,
        f"the document is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
    )


def parse_policy(document: str | Mapping[str, Any]) -> Policy:
    """Read a trust policy (JSON text, or a document already parsed, as botocore returns it)."""
    problems: list[Problem] = []
    if isinstance(document, str) and document.startswith(_BOM):
        # Read as utf-8-sig would; the mark itself is still a problem for IAM.
        document = document[len(_BOM) :]
        problems.append(
            Problem(
                "byte-order-mark",
                None,
                "the document starts with a UTF-8 byte order mark (EF BB BF), which is not JSON: "
                "RFC 8259 forbids it at the start of JSON text, the AWS CLI's file:// sends it "
                "on as part of the text, and IAM rejects the policy (MalformedPolicyDocument); "
                "imdscreds read the rest",
            )
        )
    if isinstance(document, str):
        try:
            loaded: object = json.loads(document)
        except json.JSONDecodeError as exc:
            return Policy(None, (), (*problems, _json_error(exc)), rejected=True)
        except RecursionError:  # nested deeper than the parser goes: no policy is
            problem = Problem("invalid-json", None, "the document is nested too deep to be JSON")
            return Policy(None, (), (*problems, problem), rejected=True)
    else:
        loaded = document
    if not isinstance(loaded, Mapping):
        problem = Problem("not-a-policy", None, "a policy is a JSON object with a Statement")
        return Policy(None, (), (*problems, problem), rejected=True)
    top = _keys(loaded, _TOP_KEYS, None, problems)
    version = top.get("Version")
    if version is None:
        problems.append(
            Problem(
                "version-missing",
                None,
                f'no Version: IAM then reads the document as the old "{_OLD_VERSION}" language, '
                "without policy variables",
            )
        )
    elif version == _OLD_VERSION:
        problems.append(
            Problem("version-old", None, f'Version "{_OLD_VERSION}" is the old policy language')
        )
    elif version != CURRENT_VERSION:
        problems.append(
            Problem("unknown-element", None, f"Version {json.dumps(version)} is not a version")
        )
    raw = top.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(Problem("not-a-policy", None, "the document has no Statement list"))
        raw = []
    statements = [_statement(number, item, problems) for number, item in enumerate(raw, 1)]
    return Policy(
        version=version if isinstance(version, str) else None,
        statements=tuple(statement for statement in statements if statement is not None),
        problems=tuple(problems),
        rejected=any(problem.id in REJECTED for problem in problems),
    )
