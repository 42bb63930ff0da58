"""Trust policies in Terraform: every ``aws_iam_role``, its trust policy, profile and permissions.

python-hcl2 parses the files (an optional extra: ``pip install 'imdscreds[terraform]'``). A role's
``assume_role_policy`` is read from a heredoc or string, ``jsonencode({...})`` (the HCL object
evaluated to JSON), a ``data "aws_iam_policy_document"``, or ``file()``/``templatefile()`` relative
to the module. Anything else (a variable, a local, a module output) is *unresolved*: said, never
guessed. Only an expression inside a Condition's values is let through, where it makes that one
condition unknown rather than the whole policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from imdscreds.errors import IMDSCredsError

__all__ = [
    "INSTALL_HINT",
    "Block",
    "TerraformError",
    "TerraformRole",
    "read_terraform",
]

INSTALL_HINT = "pip install 'imdscreds[terraform]'"
_PARSE_OPTIONS: dict[str, bool] = {
    "with_comments": False,
    "explicit_blocks": False,
    "preserve_heredocs": False,
    "strip_string_quotes": True,
}
_PATH_ARGUMENT = re.compile(r'^(file|templatefile)\(\s*"((?:[^"\\]|\\.)*)"')


class TerraformError(IMDSCredsError):
    """A Terraform file that cannot be read or parsed; the message names the file."""

    default_hint = (
        "Check the path, and that `terraform validate` accepts the module; a rendered policy "
        "can be explained as JSON instead."
    )


def _hcl2() -> ModuleType:
    try:
        import hcl2
    except ImportError as exc:
        raise ImportError(
            f"Reading Terraform needs python-hcl2, an optional extra: {INSTALL_HINT}"
        ) from exc
    return hcl2


def _load(hcl2: ModuleType, text: str) -> dict[str, Any]:
    from hcl2.utils import SerializationOptions

    loaded: dict[str, Any] = hcl2.loads(
        text, serialization_options=SerializationOptions(**_PARSE_OPTIONS)
    )
    return loaded


@dataclass(frozen=True)
class Block:
    """One resource or data block: its type, name, attributes and where it is."""

    type: str
    name: str
    body: Mapping[str, Any]
    file: str
    line: int

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class TerraformRole:
    """A role found in the files: its trust policy (or why it is unresolved), profile, permissions."""

    block: Block
    document: str | Mapping[str, Any] | None
    origin: str  # "a heredoc", "jsonencode", "data.aws_iam_policy_document.x", "file(...)"
    unresolved: str | None
    instance_profiles: tuple[Block, ...]
    permissions: tuple[str, ...]


def _line_of(text: str, kind: str, type_: str, name: str) -> int:
    pattern = re.compile(
        rf'^[ \t]*{kind}\s+"?{re.escape(type_)}"?\s+"?{re.escape(name)}"?\s*\{{', re.M
    )
    found = pattern.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else 1


def _blocks(loaded: Mapping[str, Any], kind: str, text: str, file: str) -> list[Block]:
    blocks: list[Block] = []
    for entry in loaded.get(kind, []) or []:
        for type_, named in entry.items():
            for name, body in named.items():
                if isinstance(body, Mapping):
                    blocks.append(Block(type_, name, body, file, _line_of(text, kind, type_, name)))
    return blocks


def _files(paths: Sequence[str]) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            tf = sorted(path.glob("*.tf"))
            if not tf:
                raise TerraformError(f"{given}: no .tf files in this directory")
            found.extend((str(Path(given) / item.name), item) for item in tf)
        elif path.is_file():
            found.append((given, path))
        else:
            raise TerraformError(f"{given}: no such file or directory")
    return found


# ``aws_iam_role.x.name``, ``aws_iam_role.x[0].arn``, ``aws_iam_role.x[count.index].id``,
# ``aws_iam_role.x[each.key].name``, ``aws_iam_role.x.*.name[0]``, ``aws_iam_role.x[*].name``
# (also inside ``element(concat(...), 0)``, ``one(...)``, ``join(...)``).
_INDEX = r"(?:\[[^\]]*\]|\.\*)?"
_ROLE_REFERENCE = re.compile(rf"\baws_iam_role\.([\w-]+){_INDEX}\.(?:name|id|arn|unique_id)\b")
# The one document a role's policy names, through an index or splat: ``x.json``, ``x[0].json``,
# ``x[*].json``, ``x.*.json``.
_DOCUMENT_REFERENCE = re.compile(rf"data\.aws_iam_policy_document\.([\w-]+){_INDEX}\.json")
_ONE_OF = re.compile(
    r"(?:one\((?P<one>.*)\)|join\(\s*\"\"\s*,\s*(?P<join>.*)\)"
    r"|element\((?P<element>.*?)\s*,\s*0\s*\)|(?P<first>.*?)\[0\])",
    re.DOTALL,
)


def _unwrap_one(expression: str) -> str:
    """``one(x[*].json)``, ``join("", x.*.json)``, ``element(x.*.json, 0)``, ``x.*.json[0]`` → x."""
    for _ in range(4):
        match = _ONE_OF.fullmatch(expression.strip())
        if match is None:
            break
        inner = next(group for group in match.groups() if group is not None).strip()
        if inner.startswith("concat(") and inner.endswith(")"):
            inner = inner[len("concat(") : -1].split(",")[0].strip()
        expression = inner
    return expression.strip()


def _references(value: object) -> list[str]:
    """Role names or addresses a ``role``/``roles`` attribute points at."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        found = _ROLE_REFERENCE.findall(item) if item.startswith("${") else []
        names.extend(f"aws_iam_role.{name}" for name in found) if found else names.append(item)
    return names


def _refers_to(block: Block, value: object) -> bool:
    role_name = block.body.get("name")
    return any(ref in (block.address, role_name) for ref in _references(value))


def _unresolved_outside_conditions(value: object, path: tuple[str, ...] = ()) -> str | None:
    """The first ``${...}`` expression in the document, unless it sits in a Condition's values."""
    if isinstance(value, str):
        # An expression in a Condition's values, or among AWS principals (an account id from
        # data.aws_caller_identity), leaves that part unknown; neither ever names the EC2 service.
        aws_principal = "AWS" in path[-2:] and any("Principal" in part for part in path)
        if "${" in value and "Condition" not in path and not aws_principal:
            return value
        return None
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = value.items()
    elif isinstance(value, list):
        items = ((str(i), item) for i, item in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _unresolved_outside_conditions(item, (*path, key))
        if found is not None:
            return found
    return None


# Commercial partition unless told otherwise: aws-us-gov shares its dns_suffix, aws-cn does not.
_PARTITION = {"partition": "aws", "dns_suffix": "amazonaws.com"}
_PARTITION_VALUES: Mapping[str, object] = {f"partition.{k}": v for k, v in _PARTITION.items()}
PARTITION_NOTE = "assuming partition aws (dns_suffix amazonaws.com)"
_VALUE_REFERENCE = re.compile(
    r"\$\{\s*(?:var\.([\w-]+)|local\.([\w-]+)|data\.aws_partition\.[\w-]+\.(partition|dns_suffix))\s*\}"
)


def _substitute(value: object, values: Mapping[str, object], used: set[str]) -> object:
    """``${var.x}`` (a default), ``${local.x}`` and ``${data.aws_partition.*.dns_suffix}`` filled in."""
    if isinstance(value, list):
        filled: list[object] = []
        for item in value:
            got = _substitute(item, values, used)
            filled.extend(got) if isinstance(item, str) and isinstance(
                got, list
            ) else filled.append(got)
        return filled
    if isinstance(value, Mapping):
        return {key: _substitute(item, values, used) for key, item in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def key(match: re.Match[str]) -> str:
        variable, local, partition = match.groups()
        return (
            f"var.{variable}"
            if variable
            else f"local.{local}"
            if local
            else f"partition.{partition}"
        )

    whole = _VALUE_REFERENCE.fullmatch(value.strip())
    if whole and key(whole) in values:
        used.add(key(whole))
        return values[key(whole)]

    def one(match: re.Match[str]) -> str:
        found = values.get(key(match))
        if isinstance(found, (str, int, float)) and not isinstance(found, bool):
            used.add(key(match))
            return str(found)
        return match.group(0)

    return _VALUE_REFERENCE.sub(one, value)


def _known_values(loaded: Mapping[str, Any]) -> dict[str, object]:
    """A file's variable defaults and locals, by ``var.x`` / ``local.x``."""
    values: dict[str, object] = {}
    for entry in loaded.get("variable", []) or []:
        for name, body in entry.items():
            if isinstance(body, Mapping) and "default" in body:
                values[f"var.{name}"] = body["default"]
    for entry in loaded.get("locals", []) or []:
        for name, item in entry.items():
            if not name.startswith("__"):
                values[f"local.{name}"] = item
    return values


def _strip_expression(text: str) -> str:
    return text[2:-1].strip() if text.startswith("${") and text.endswith("}") else text


def _policy_document(block: Block) -> tuple[dict[str, Any] | None, str | None]:
    """An ``aws_iam_policy_document``'s statements as the JSON Terraform renders from them."""
    body = block.body
    for composed in ("source_policy_documents", "override_policy_documents", "source_json"):
        if body.get(composed):
            return None, f"{block.address} merges {composed}, which imdscreds does not follow"
    statements: list[dict[str, Any]] = []
    for raw in body.get("statement", []) or []:
        statement: dict[str, Any] = {"Effect": raw.get("effect", "Allow")}
        if raw.get("sid"):
            statement["Sid"] = raw["sid"]
        for attribute, element in (
            ("actions", "Action"),
            ("not_actions", "NotAction"),
            ("resources", "Resource"),
            ("not_resources", "NotResource"),
        ):
            if attribute in raw:
                statement[element] = raw[attribute]
        for attribute, element in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
            blocks = raw.get(attribute) or []
            if not blocks:
                continue
            merged: dict[str, list[str]] = {}
            for principal in blocks:
                kind = principal.get("type")
                identifiers = principal.get("identifiers") or []
                merged.setdefault(str(kind), []).extend(
                    identifiers if isinstance(identifiers, list) else [identifiers]
                )
            statement[element] = "*" if merged == {"*": ["*"]} else merged
        conditions: dict[str, dict[str, Any]] = {}
        for condition in raw.get("condition", []) or []:
            operator = conditions.setdefault(str(condition.get("test")), {})
            operator[str(condition.get("variable"))] = condition.get("values")
        if conditions:
            statement["Condition"] = conditions
        statements.append(statement)
    return {"Version": body.get("version", "2012-10-17"), "Statement": statements}, None


def _jsonencode(hcl2: ModuleType, expression: str) -> tuple[object, str | None]:
    inner = expression[len("jsonencode(") : -1]
    try:
        value = _load(hcl2, f"value = {inner}\n")["value"]
    except Exception as exc:  # noqa: BLE001 - any parser failure means "cannot evaluate"
        return None, f"its jsonencode() argument could not be evaluated ({type(exc).__name__})"
    return value, None


def _from_file(expression: str, module: Path) -> tuple[str | None, str, str | None]:
    match = _PATH_ARGUMENT.match(expression)
    if match is None:
        return None, expression, f"{expression} has a path that is not a plain string"
    function, raw_path = match.groups()
    path = raw_path.replace("${path.module}", ".").replace("${path.root}", ".")
    origin = f'{function}("{raw_path}")'
    if "${" in path:
        return None, origin, f"{origin} builds its path from an expression"
    target = Path(path) if Path(path).is_absolute() else module / path
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, origin, f"{origin}: {target} cannot be read ({exc.__class__.__name__})"
    if function == "templatefile" and ("${" in text or "%{" in text):
        return None, origin, f"{origin} fills in template variables, which imdscreds does not"
    return text, origin, None


def _needs(expression: str, values: Mapping[str, object]) -> str:
    """What an unresolved ``${...}`` needs, naming the one value."""
    match = re.search(r"\bvar\.([\w-]+)", expression)
    if match and f"var.{match.group(1)}" not in values:
        return f"needs var.{match.group(1)} (no default)"
    return f"holds {_strip_expression(expression)}"


def _filled(
    document: object, origin: str, values: Mapping[str, object]
) -> tuple[object, str, str | None]:
    used: set[str] = set()
    document = _substitute(document, values, used)
    if any(name.startswith("partition.") for name in used):
        origin = f"{origin}; {PARTITION_NOTE}"
    found = _unresolved_outside_conditions(document)
    return document, origin, None if found is None else _needs(found, values)


def _resolve(
    hcl2: ModuleType,
    block: Block,
    module: Path,
    documents: Mapping[str, Block],
    values: Mapping[str, object] = _PARTITION_VALUES,
) -> tuple[str | Mapping[str, Any] | None, str, str | None]:
    """The role's trust policy, where it came from, and why not when it cannot be had."""
    value = block.body.get("assume_role_policy")
    if value is None:
        return None, "nothing", "the role has no assume_role_policy"
    if not isinstance(value, str):
        return None, "an expression", "assume_role_policy is not a string expression"
    if not (value.startswith("${") and value.endswith("}")):
        if "${" in value:
            return None, "a string", "the policy text interpolates an expression"
        return value, "a heredoc or string", None
    expression = _strip_expression(value)
    if expression.startswith("jsonencode(") and expression.endswith(")"):
        document, why = _jsonencode(hcl2, expression)
        origin = "jsonencode"
        if why is None:
            document, origin, why = _filled(document, origin, values)
            why = None if why is None else f"jsonencode() {why}"
        if why is not None or not isinstance(document, Mapping):
            return None, origin, why or "jsonencode() of something that is not an object"
        return document, origin, None
    match = _DOCUMENT_REFERENCE.fullmatch(_unwrap_one(expression))
    if match:
        source = documents.get(match.group(1))
        origin = f"data.aws_iam_policy_document.{match.group(1)}"
        if source is None:
            return None, origin, f"{origin} is not in these files"
        raw, why = _policy_document(source)
        where = f"{origin} ({source.where})"
        if why is None:
            filled, where, needs = _filled(raw, where, values)
            why = None if needs is None else f"{origin} {needs}"
            if why is None and isinstance(filled, Mapping):
                return filled, where, None
        return None, where, why
    if expression.startswith(("file(", "templatefile(")):
        return _from_file(expression, module)
    return (
        None,
        expression,
        f"{expression} cannot be resolved offline (a variable, local or output)",
    )


def _permissions(role: Block, blocks: Sequence[Block]) -> tuple[str, ...]:
    found: list[str] = []
    if role.body.get("managed_policy_arns"):
        arns = role.body["managed_policy_arns"]
        found.append(
            f"managed_policy_arns ({', '.join(map(str, arns)) if isinstance(arns, list) else arns})"
        )
    for inline in role.body.get("inline_policy", []) or []:
        if isinstance(inline, Mapping) and inline.get("policy"):
            found.append(f"inline_policy {inline.get('name', '')}".rstrip())
    for block in blocks:
        if block.type in ("aws_iam_role_policy_attachment", "aws_iam_role_policy"):
            if _refers_to(role, block.body.get("role")):
                found.append(f"{block.address} ({block.where})")
        elif (
            block.type == "aws_iam_policy_attachment" and _refers_to(role, block.body.get("roles"))
        ) or (
            block.type == "aws_iam_role_policies_exclusive"
            and _refers_to(role, block.body.get("role_name"))
        ):
            found.append(f"{block.address} ({block.where})")
    return tuple(found)


def read_terraform(
    paths: Sequence[str], variables: Mapping[str, object] | None = None
) -> list[TerraformRole]:
    """Every ``aws_iam_role`` in ``paths`` (files, or directories of ``.tf`` files), resolved.

    Variable values: the defaults, then the tfvars files beside each directory in ``paths``
    (``terraform.tfvars``, ``*.auto.tfvars``...), then ``variables`` (by name, ``{"x": 1}``).
    """
    from imdscreds.trust.tfvars import read_variables

    hcl2 = _hcl2()
    resources: list[Block] = []
    documents: dict[str, Block] = {}
    modules: dict[str, Path] = {}
    values: dict[str, object] = dict(_PARTITION_VALUES)
    for shown, path in _files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TerraformError(f"{shown}: cannot be read ({exc})") from exc
        try:
            loaded = _load(hcl2, text)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TerraformError(f"{shown}: not valid Terraform: {first}") from exc
        modules[shown] = path.parent
        values.update(_known_values(loaded))
        resources.extend(_blocks(loaded, "resource", text, shown))
        for block in _blocks(loaded, "data", text, shown):
            if block.type == "aws_iam_policy_document":
                documents[block.name] = block
    values.update(read_variables(paths).as_values())
    values.update({f"var.{name}": value for name, value in (variables or {}).items()})
    roles: list[TerraformRole] = []
    for block in resources:
        if block.type != "aws_iam_role":
            continue
        document, origin, why = _resolve(hcl2, block, modules[block.file], documents, values)
        profiles = tuple(
            other
            for other in resources
            if other.type == "aws_iam_instance_profile"
            and (
                _refers_to(block, other.body.get("role"))
                or _refers_to(block, other.body.get("roles"))
            )
        )
        roles.append(
            TerraformRole(block, document, origin, why, profiles, _permissions(block, resources))
        )
    return roles
