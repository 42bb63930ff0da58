"""Trust policies in Terraform: every ``aws_iam_role``, its trust policy, profile and permissions.

python-hcl2 parses the files (an optional extra: ``pip install 'imdscreds[terraform]'``); each
directory is one module. A role's ``assume_role_policy`` is evaluated by :mod:`hclexpr` as
Terraform would evaluate it, with what the files hold: heredocs, ``jsonencode``, data documents
(``aws_iam_policy_document`` with its dynamic blocks and merged documents, ``template_file``),
``file``/``templatefile``, conditionals, ``coalesce``/``try``, variable defaults, locals and the
partition (``aws`` assumed, and said). A value the files do not hold (a variable without a
default, a module output) is *unresolved*: named, never guessed. Inside a Condition's values or an
AWS principal it makes only that part unknown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from imdscreds.errors import IMDSCredsError
from imdscreds.trust import hclexpr

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
    # For a policy that depends on an unknown condition: each branch's policy, by its condition.
    branches: tuple[tuple[str, str | Mapping[str, Any] | None], ...] = ()
    # Why the role needs no instance profile of its own (EKS creates one from it), if so.
    profile_made_by: str | None = None


def _line_of(text: str, kind: str, type_: str, name: str) -> int:
    typed = rf'"?{re.escape(type_)}"?\s+' if type_ else ""  # a module block has no type
    pattern = re.compile(rf'^[ \t]*{kind}\s+{typed}"?{re.escape(name)}"?\s*\{{', re.M)
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
    """The first ``${...}`` marker in the document, unless it sits in a Condition's values."""
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


# What data.aws_partition says in each partition. The commercial one unless told otherwise;
# aws-us-gov shares its dns_suffix, aws-cn does not (EC2 there is ec2.amazonaws.com.cn).
PARTITIONS: Mapping[str, Mapping[str, str]] = {
    name: {"partition": name, "id": name, "dns_suffix": suffix, "reverse_dns_prefix": prefix}
    for name, suffix, prefix in (
        ("aws", "amazonaws.com", "com.amazonaws"),
        ("aws-cn", "amazonaws.com.cn", "cn.com.amazonaws"),
        ("aws-us-gov", "amazonaws.com", "com.amazonaws"),
        ("aws-iso", "c2s.ic.gov", "gov.ic.c2s"),
        ("aws-iso-b", "sc2s.sgov.gov", "gov.sgov.sc2s"),
        ("aws-iso-e", "cloud.adc-e.uk", "uk.adc-e.cloud"),
        ("aws-iso-f", "csp.hci.ic.gov", "gov.ic.hci.csp"),
    )
}


def partition_note(partition: str) -> str:
    """What the output says when a policy used data.aws_partition."""
    return f"assuming partition {partition} (dns_suffix {PARTITIONS[partition]['dns_suffix']})"


PARTITION_NOTE = partition_note("aws")
_MAX_FILE = 1 << 20
_MARKER = re.compile(r"\$\{([^{}]*)\}")


def _needs(marker: str) -> str:
    """What a ``${...}`` marker left in a document needs, in words."""
    found = _MARKER.search(marker)
    inner = found.group(1).strip() if found else marker
    return f"needs {inner}"


class _Module:
    """One module directory: its variables, locals and data sources, and a scope to evaluate in."""

    def __init__(
        self, directory: Path, variables: Mapping[str, object], partition: str = "aws"
    ) -> None:
        self.directory = directory
        self.partition = partition
        self.defaults: dict[str, object] = {}
        self.declared: set[str] = set()
        self.locals: dict[str, object] = {}
        self.data: dict[tuple[str, str], Block] = {}
        self.given = dict(variables)
        self._locals_done: dict[str, object] = {}
        self._evaluating: set[str] = set()
        self._documents: dict[str, object] = {}
        self._documents_on_partition: set[str] = set()
        self.partition_used = False
        self.scope = hclexpr.Scope(self._lookup, self._read_file)

    def add(self, loaded: Mapping[str, Any], data: Sequence[Block]) -> None:
        for entry in loaded.get("variable", []) or []:
            for name, body in entry.items():
                self.declared.add(name)
                if isinstance(body, Mapping) and "default" in body:
                    self.defaults[name] = body["default"]
        for entry in loaded.get("locals", []) or []:
            for name, item in entry.items():
                if not name.startswith("__"):
                    self.locals[name] = item
        for block in data:
            self.data[(block.type, block.name)] = block

    # -- references
    def _lookup(self, name: str) -> object:
        namespace = hclexpr.Namespace
        if name == "var":
            return namespace(self._variable, indexable=False)
        if name == "local":
            return namespace(self._local, indexable=False)
        if name == "data":
            return namespace(
                lambda type_: namespace(lambda n: self._data_source(type_, n), indexable=False),
                indexable=False,
            )
        if name == "path":
            here = str(self.directory)
            return {"module": here, "root": here, "cwd": str(Path.cwd())}
        if name == "module":
            return namespace(
                lambda n: hclexpr.Unknown(f"module.{n}'s outputs (another module)"),
                indexable=False,
            )
        if name in ("count", "each", "self", "terraform"):
            return namespace(lambda attr: hclexpr.Unknown(f"{name}.{attr}"), indexable=False)
        return namespace(
            lambda n: namespace(lambda attr: hclexpr.Unknown(f"{name}.{n}.{attr}")),
            indexable=False,
        )

    def _variable(self, name: str) -> object:
        if name in self.given:
            return self.given[name]
        if name in self.defaults:
            default = self.defaults[name]
            return (
                hclexpr.evaluate_value(default, self.scope)
                if isinstance(default, str)
                else (default)
            )
        if name in self.declared:
            return hclexpr.Unknown(f"var.{name} (no default)")
        return hclexpr.Unknown(f"var.{name} (not declared in these files)")

    def _local(self, name: str) -> object:
        if name in self._locals_done:
            return self._locals_done[name]
        if name not in self.locals:
            return hclexpr.Unknown(f"local.{name} (not in these files)")
        if name in self._evaluating:
            return hclexpr.Unknown(f"local.{name} (it refers to itself)")
        self._evaluating.add(name)
        try:
            value = hclexpr.evaluate_value(self.locals[name], self.scope)
        except hclexpr.EvalError as exc:
            value = hclexpr.Unknown(f"local.{name} ({exc})")
        finally:
            self._evaluating.discard(name)
        self._locals_done[name] = value
        return value

    def _data_source(self, type_: str, name: str) -> object:
        namespace = hclexpr.Namespace
        address = f"data.{type_}.{name}"
        if type_ == "aws_partition":
            return namespace(self._partition)
        block = self.data.get((type_, name))
        if block is None:
            return hclexpr.Unknown(f"{address}, which is not in these files")
        if type_ == "aws_iam_policy_document":
            return namespace(lambda attr: self._document(block, attr))
        if type_ == "template_file":
            return namespace(lambda attr: self._template_file(block, attr))
        if type_ == "aws_service_principal":
            return namespace(
                lambda attr: self._service_principal(block, attr, self.scope),
                index=lambda key: namespace(
                    lambda attr: self._service_principal(block, attr, self._instance(block, key))
                ),
            )
        return namespace(lambda attr: hclexpr.Unknown(f"{address}.{attr}"))

    def _instance(self, block: Block, key: object) -> hclexpr.Scope:
        """The scope of one instance of a counted or for_each block: count.index, each.*."""
        if "for_each" in block.body:
            chosen = hclexpr.evaluate_value(block.body["for_each"], self.scope)
            value = chosen.get(str(key)) if isinstance(chosen, Mapping) else key
            return self.scope.child(each={"key": key, "value": value})
        return self.scope.child(count={"index": key})

    def _service_principal(self, block: Block, attribute: str, scope: hclexpr.Scope) -> object:
        """data.aws_service_principal: the service's principal name in this partition."""
        service = hclexpr.evaluate_value(block.body.get("service_name"), scope)
        if isinstance(service, hclexpr.Unknown):
            return service
        suffix = self._partition("dns_suffix")
        values = {"name": f"{service}.{suffix}", "id": f"{service}.{suffix}", "suffix": suffix}
        if attribute not in values:
            return hclexpr.Unknown(f"{block.address}.{attribute}")
        return values[attribute]

    def _partition(self, attribute: str) -> object:
        values = PARTITIONS[self.partition]
        if attribute not in values:
            raise hclexpr.EvalError(f"aws_partition has no attribute {attribute!r}")
        self.partition_used = True
        return values[attribute]

    def _template_file(self, block: Block, attribute: str) -> object:
        if attribute != "rendered":
            return hclexpr.Unknown(f"{block.address}.{attribute}")
        template = hclexpr.evaluate_value(block.body.get("template", ""), self.scope)
        variables = hclexpr.evaluate_value(block.body.get("vars", {}), self.scope)
        if isinstance(template, hclexpr.Unknown):
            return template
        if isinstance(variables, hclexpr.Unknown):
            return variables
        if not isinstance(template, str) or not isinstance(variables, Mapping):
            raise hclexpr.EvalError(f"{block.address}: template and vars are not text and a map")
        inner = hclexpr.Scope(_template_variable, self._read_file, dict(variables))
        return hclexpr.render_template(template, inner)

    def _read_file(self, given: str) -> str:
        # Terraform resolves a relative path from the working directory, which is the root
        # module: the directory being read.
        path = Path(given)
        target = path if path.is_absolute() else self.directory / path
        try:
            with target.open("rb") as handle:
                data = handle.read(_MAX_FILE + 1)
        except OSError as exc:
            raise hclexpr.EvalError(f"{given} cannot be read ({exc.__class__.__name__})") from exc
        if len(data) > _MAX_FILE:
            raise hclexpr.EvalError(f"{given} is over 1 MiB")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise hclexpr.EvalError(f"{given} is not UTF-8") from exc

    # -- aws_iam_policy_document, rendered as Terraform renders it
    def _document(self, block: Block, attribute: str) -> object:
        if attribute not in ("json", "minified_json"):
            return hclexpr.Unknown(f"{block.address}.{attribute}")
        if block.name not in self._documents:
            self._documents[block.name] = hclexpr.Unknown(f"{block.address} (it refers to itself)")
            used, self.partition_used = self.partition_used, False
            try:
                self._documents[block.name] = self._render_document(block)
            except hclexpr.EvalError as exc:
                self._documents[block.name] = hclexpr.Unknown(f"{block.address} ({exc})")
            if self.partition_used:
                self._documents_on_partition.add(block.name)
            self.partition_used = used
        if block.name in self._documents_on_partition:
            self.partition_used = True
        return self._documents[block.name]

    def _render_document(self, block: Block) -> object:
        body = block.body
        scope = self.scope
        # Terraform's order: the source documents, this document's own statements, then the
        # override documents; each later statement replaces an earlier one with its Sid.
        merged: list[object] = []
        for merging in (_SOURCES, (), _OVERRIDES):
            if not merging:
                own = [
                    raw.placeholder()
                    if isinstance(raw, hclexpr.Unknown)
                    else _statement(raw, inner)
                    for raw, inner in _expand(body, "statement", scope)
                ]
                merged = _override(merged, own)
            for attribute in merging:
                documents = hclexpr.evaluate_value(body.get(attribute), scope)
                for document in documents if isinstance(documents, list) else [documents]:
                    got = _statements_of(document, f"{block.address}'s {attribute}")
                    if isinstance(got, hclexpr.Unknown):
                        return got
                    merged = _override(merged, got)
        version = hclexpr.evaluate_value(body.get("version", "2012-10-17"), scope)
        document = {"Version": version, "Statement": merged}
        return json.dumps(hclexpr.placeholders(document))


_SOURCES = ("source_policy_documents", "source_json")
_OVERRIDES = ("override_policy_documents", "override_json")


def _template_variable(name: str) -> object:
    raise hclexpr.EvalError(f"{name} is not one of the template's vars")


def _statements_of(source: object, what: str) -> list[object] | hclexpr.Unknown:
    """The statements of one merged document (a JSON string); none for null or ""."""
    if source is None or source == "":
        return []
    if isinstance(source, hclexpr.Unknown):
        if source.partial is None:
            return source
        source = source.partial
    if not isinstance(source, str):
        raise hclexpr.EvalError(f"{what} holds something that is not a JSON document")
    try:
        document = json.loads(source)
    except ValueError as exc:
        raise hclexpr.EvalError(f"{what} holds text that is not JSON") from exc
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    return list(statements) if isinstance(statements, list) else [statements]


def _override(base: Sequence[object], later: Sequence[object]) -> list[object]:
    """Terraform's merge: a later statement with the Sid of an earlier one takes its place."""
    merged = list(base)
    for statement in later:
        sid = statement.get("Sid") if isinstance(statement, dict) else None
        at = next(
            (
                i
                for i, s in enumerate(merged)
                if sid and isinstance(s, dict) and s.get("Sid") == sid
            ),
            None,
        )
        if at is None:
            merged.append(statement)
        else:
            merged[at] = statement
    return merged


def _expand(
    body: Mapping[str, Any], label: str, scope: hclexpr.Scope
) -> list[tuple[Any, hclexpr.Scope]]:
    """A body's ``label`` blocks, static ones and each ``dynamic "label"`` expanded."""
    found: list[tuple[Any, hclexpr.Scope]] = [
        (raw, scope) for raw in body.get(label, []) or [] if isinstance(raw, Mapping)
    ]
    for entry in body.get("dynamic", []) or []:
        spec = entry.get(label) if isinstance(entry, Mapping) else None
        if not isinstance(spec, Mapping):
            continue
        for_each = hclexpr.evaluate_value(spec.get("for_each"), scope)
        iterator = str(spec.get("iterator", label)).removeprefix("${").removesuffix("}")
        contents = spec.get("content") or [{}]
        content = contents[0] if isinstance(contents, list) else contents
        if isinstance(for_each, hclexpr.Unknown):
            found.append(
                (hclexpr.Unknown(f"{for_each.needs}, a dynamic {label}'s for_each"), scope)
            )
            continue
        if isinstance(for_each, Mapping):
            pairs: list[tuple[object, object]] = list(for_each.items())
        elif isinstance(for_each, list):
            pairs = [
                (item, item) if isinstance(item, str) else (i, item)
                for i, item in enumerate(for_each)
            ]
        else:
            raise hclexpr.EvalError(f"a dynamic {label}'s for_each is not a list or map")
        for key, value in pairs:
            found.append((content, scope.child(**{iterator: {"key": key, "value": value}})))
    return found


def _statement(raw: Mapping[str, Any], scope: hclexpr.Scope) -> dict[str, Any]:
    """One ``statement`` block as the JSON statement Terraform renders from it."""

    def value(item: object) -> object:
        return hclexpr.evaluate_value(item, scope)

    statement: dict[str, Any] = {"Effect": value(raw.get("effect", "Allow"))}
    if raw.get("sid"):
        statement["Sid"] = value(raw["sid"])
    for attribute, element in (
        ("actions", "Action"),
        ("not_actions", "NotAction"),
        ("resources", "Resource"),
        ("not_resources", "NotResource"),
    ):
        if attribute in raw:
            statement[element] = value(raw[attribute])
    for attribute, element in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        merged: dict[str, list[object]] = {}
        for principal, inner in _expand(raw, attribute, scope):
            if isinstance(principal, hclexpr.Unknown):
                merged.setdefault(principal.placeholder(), [])
                continue
            kind = hclexpr.evaluate_value(principal.get("type"), inner)
            identifiers = hclexpr.evaluate_value(principal.get("identifiers") or [], inner)
            key = kind.placeholder() if isinstance(kind, hclexpr.Unknown) else str(kind)
            merged.setdefault(key, []).extend(
                identifiers if isinstance(identifiers, list) else [identifiers]
            )
        if merged:
            statement[element] = "*" if merged == {"*": ["*"]} else merged
    conditions: dict[str, dict[str, Any]] = {}
    for condition, inner in _expand(raw, "condition", scope):
        if isinstance(condition, hclexpr.Unknown):
            # Conditions made by a for_each nobody can see: that they hold is unknown.
            marker = condition.placeholder()
            conditions.setdefault("StringEquals", {})[marker] = [marker]
            continue
        test = hclexpr.evaluate_value(condition.get("test"), inner)
        variable = hclexpr.evaluate_value(condition.get("variable"), inner)
        values = hclexpr.evaluate_value(condition.get("values"), inner)
        operator = conditions.setdefault(
            test.placeholder() if isinstance(test, hclexpr.Unknown) else str(test), {}
        )
        name = variable.placeholder() if isinstance(variable, hclexpr.Unknown) else str(variable)
        operator[name] = values
    if conditions:
        statement["Condition"] = conditions
    return statement


def _origin(value: str, module: _Module) -> str:
    """Where a role's policy comes from, in words."""
    if not (value.startswith("${") and value.endswith("}")):
        return "a heredoc or string"
    expression = value[2:-1].strip()
    documents = set(_DOCUMENT_REFERENCE.findall(expression))
    document = _DOCUMENT_REFERENCE.search(expression) if len(documents) == 1 else None
    if expression.startswith("jsonencode("):
        return "jsonencode"
    if document and not re.search(r"\?|\b(?:coalesce|try)\(", expression):
        block = module.data.get(("aws_iam_policy_document", document.group(1)))
        where = f" ({block.where})" if block else ""
        return f"data.aws_iam_policy_document.{document.group(1)}{where}"
    path = _PATH_ARGUMENT.match(expression)
    if path:
        return f'{path.group(1)}("{path.group(2)}")'
    return expression if len(expression) <= 120 else expression[:117] + "..."


_Branches = tuple[tuple[str, "str | Mapping[str, Any] | None"], ...]


def _resolve(
    block: Block, module: _Module
) -> tuple[str | Mapping[str, Any] | None, str, str | None, _Branches]:
    """The role's trust policy, where it came from, why not when it cannot be had, and the
    policy of each branch when it depends on an unknown condition."""
    value = block.body.get("assume_role_policy")
    if value is None:
        return None, "nothing", "the role has no assume_role_policy", ()
    if not isinstance(value, str):
        return None, "an expression", "assume_role_policy is not a string expression", ()
    origin = _origin(value, module)
    module.partition_used = False
    try:
        got = hclexpr.evaluate_value(value, module.scope)
    except hclexpr.EvalError as exc:
        return None, origin, f"{origin} cannot be evaluated: {exc}", ()
    except RecursionError:
        return None, origin, f"{origin} is nested too deep to evaluate", ()
    if module.partition_used:
        origin = f"{origin}; {partition_note(module.partition)}"
    branches: _Branches = ()
    if isinstance(got, hclexpr.Unknown):
        if got.branches:
            branches = tuple((when, _document_of(branch)[0]) for when, branch in got.branches)
            return None, origin, f"it depends on {got.needs}", branches
        if got.partial is None:
            return None, origin, f"{origin} needs {got.needs}", ()
        got = got.partial
    document, why = _document_of(got)
    if why is not None:
        return None, origin, f"{origin} {why}" if not why.startswith(origin) else why, ()
    return document, origin, None, ()


def _document_of(value: object) -> tuple[str | Mapping[str, Any] | None, str | None]:
    """A policy value (text or object) as a document, or why it cannot be one."""
    if isinstance(value, hclexpr.Unknown):
        if value.partial is None:
            return None, f"needs {value.needs}"
        value = value.partial
    if isinstance(value, Mapping):
        found = _unresolved_outside_conditions(value)
        return (value, None) if found is None else (None, _needs(found))
    if not isinstance(value, str):
        return None, "is not a policy document"
    try:
        parsed = json.loads(value.lstrip("\ufeff"))
    except ValueError:
        # Not JSON: the explainer says what is wrong with the text.
        return (value, None) if "${" not in value else (None, _needs(value))
    found = _unresolved_outside_conditions(parsed)
    if found is not None:
        return None, _needs(found)
    return value, None


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
        elif block.type == "module" and _mentions(role, block.body):
            # A module given the role attaches what it likes: its files are not read here.
            found.append(f"module.{block.name} ({block.where}), which is given the role")
    return tuple(found)


def _mentions(role: Block, body: Mapping[str, Any]) -> bool:
    """Whether any attribute of ``body`` refers to ``role`` (its name, id or ARN)."""
    text = json.dumps(body)
    return any(f"aws_iam_role.{name}" == role.address for name in _ROLE_REFERENCE.findall(text))


# Resources that take a role's ARN and create the instance profile themselves: EKS managed node
# groups, EKS Auto Mode (the cluster's compute_config) and access entries of type EC2 (what
# Karpenter's node role and Auto Mode node classes are given).
_PROFILE_MAKERS = {
    "aws_eks_node_group": "node_role_arn",
    "aws_eks_cluster": "node_role_arn",
    "aws_eks_access_entry": "principal_arn",
}


def _profile_made_by(role: Block, blocks: Sequence[Block]) -> str | None:
    for block in blocks:
        attribute = _PROFILE_MAKERS.get(block.type)
        if attribute is None:
            continue
        if block.type == "aws_eks_access_entry":
            kind = str(block.body.get("type", ""))
            if not (kind.startswith("EC2") or "access_entry_type" in kind):
                continue
        if attribute in json.dumps(block.body) and _mentions(role, block.body):
            return f"{block.address} ({block.where})"
    return None


def read_terraform(
    paths: Sequence[str],
    variables: Mapping[str, object] | None = None,
    *,
    partition: str = "aws",
) -> list[TerraformRole]:
    """Every ``aws_iam_role`` in ``paths`` (files, or directories of ``.tf`` files), resolved.

    Each directory is a module of its own: its variables, locals and data sources resolve its
    roles' expressions, with ``data.aws_partition`` answering for ``partition``. A variable's
    value is its default, then what the tfvars files beside a directory given in ``paths`` say
    (``terraform.tfvars``, ``*.auto.tfvars``...), then ``variables`` (by name, ``{"x": 1}``).
    """
    from imdscreds.trust.tfvars import auto_files, read_variable_file

    if partition not in PARTITIONS:
        raise TerraformError(
            f"{partition!r} is not an AWS partition.",
            hint=f"Use one of: {', '.join(PARTITIONS)}.",
        )
    hcl2 = _hcl2()
    resources: list[Block] = []
    modules: dict[Path, _Module] = {}
    module_of: dict[str, _Module] = {}
    given_directories = {Path(path) for path in paths if Path(path).is_dir()}
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
        directory = path.parent.resolve()
        module = modules.get(directory)
        if module is None:
            given: dict[str, object] = {}
            if path.parent in given_directories:
                for file in auto_files(str(path.parent)):
                    given.update(read_variable_file(file))
            given.update(variables or {})
            module = modules[directory] = _Module(directory, given, partition)
        module.add(loaded, _blocks(loaded, "data", text, shown))
        module_of[shown] = module
        resources.extend(_blocks(loaded, "resource", text, shown))
        for entry in loaded.get("module", []) or []:
            for name, body in entry.items():
                if isinstance(body, Mapping):
                    line = _line_of(text, "module", "", name)
                    resources.append(Block("module", name, body, shown, line))
    roles: list[TerraformRole] = []
    for block in resources:
        if block.type != "aws_iam_role":
            continue
        document, origin, why, branches = _resolve(block, module_of[block.file])
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
            TerraformRole(
                block,
                document,
                origin,
                why,
                profiles,
                _permissions(block, resources),
                branches,
                _profile_made_by(block, resources),
            )
        )
    return roles
