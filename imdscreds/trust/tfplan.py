"""Roles in Terraform's JSON plan or state (``terraform show -json``), with no HCL to evaluate.

A plan's ``planned_values.root_module`` (a state's ``values.root_module``) lists every resource
instance by address, its modules' instances under ``child_modules``, with the values Terraform
computed: ``assume_role_policy`` is the rendered JSON text. A value known only after apply is left
out of ``values`` and marked in ``resource_changes[].change.after_unknown``; such a role's trust is
*unresolved*, naming that attribute. Roles, instance profiles and attachments meet by role name
(``values.role`` of a profile or attachment is the role's ``name``), or, when the name is computed,
by the references the plan's ``configuration`` records for their ``role`` expression.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from imdscreds.trust.terraform import Block, TerraformError, TerraformRole

__all__ = ["PlanBlock", "is_plan", "read_plan", "read_plan_text"]

_ATTACHMENTS = ("aws_iam_role_policy_attachment", "aws_iam_role_policy")


@dataclass(frozen=True)
class PlanBlock(Block):
    """A resource instance of a plan or state: its full address (``module.x.aws_iam_role.y[0]``)."""

    resource_address: str = ""
    index: int | str | None = None  # count.index or each.key, when the resource has one

    @property
    def address(self) -> str:
        return self.resource_address or f"{self.type}.{self.name}"

    @property
    def local(self) -> str:
        """The address inside its module, with no index: ``aws_iam_role.this``."""
        return f"{self.type}.{self.name}"

    @property
    def module(self) -> str:
        """The module instance's address (``module.x[0]``), ``""`` for the root module."""
        address = self.address
        at = address.rfind(f"{self.local}")
        return address[:at].rstrip(".") if at > 0 else ""


def is_plan(document: object) -> bool:
    """True for the JSON of ``terraform show -json`` (a plan, or a state)."""
    return (
        isinstance(document, Mapping)
        and "format_version" in document
        and ("planned_values" in document or "values" in document)
    )


def _resources(module: object) -> Iterator[Mapping[str, Any]]:
    if not isinstance(module, Mapping):
        return
    for resource in module.get("resources", []) or []:
        if isinstance(resource, Mapping) and resource.get("mode", "managed") == "managed":
            yield resource
    for child in module.get("child_modules", []) or []:
        yield from _resources(child)


def _unknown(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Each address's ``after_unknown``: the attributes known only after apply."""
    found: dict[str, Mapping[str, Any]] = {}
    for change in document.get("resource_changes", []) or []:
        if not isinstance(change, Mapping):
            continue
        after_unknown = (change.get("change") or {}).get("after_unknown")
        if isinstance(change.get("address"), str) and isinstance(after_unknown, Mapping):
            found[change["address"]] = after_unknown
    return found


def _policy(
    block: PlanBlock, unknown: Mapping[str, Any], origin: str
) -> tuple[str | Mapping[str, Any] | None, str | None]:
    policy = block.body.get("assume_role_policy")
    if isinstance(policy, str) and policy.strip():
        try:
            parsed = json.loads(policy)
        except ValueError:
            return policy, None  # explained as invalid JSON, with its finding
        return (parsed, None) if isinstance(parsed, Mapping) else (policy, None)
    if unknown.get("assume_role_policy") is True:
        return None, (
            "assume_role_policy is known only after apply (unknown in the plan: it is built "
            "from a value another resource creates)"
        )
    return None, f"the role has no assume_role_policy in {origin}"


def _names(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str)]


_INDEX = re.compile(r"\[[^\]]*\]")
_ROLE_REFERENCE = re.compile(r"^aws_iam_role\.([\w-]+)")


class _Links:
    """Who names which role: by the role's ``name`` value, else by the configuration's references.

    A role whose name Terraform computes (``name_prefix``, a name from another module) has no
    ``name`` in the plan, nor do the profiles and attachments that name it; the plan's
    ``configuration`` still says which role their ``role`` expression refers to, in the same module.
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.modules: dict[str, Mapping[str, Any]] = {}
        configuration = document.get("configuration")
        if isinstance(configuration, Mapping):
            self._walk(configuration.get("root_module"), "")

    def _walk(self, module: object, prefix: str) -> None:
        if not isinstance(module, Mapping):
            return
        self.modules[prefix] = module
        for name, call in (module.get("module_calls") or {}).items():
            if isinstance(call, Mapping):
                self._walk(call.get("module"), f"{prefix}.module.{name}".lstrip("."))

    def _referenced(self, block: PlanBlock, attribute: str) -> set[str]:
        module = self.modules.get(_INDEX.sub("", block.module), {})
        for resource in module.get("resources", []) or []:
            if isinstance(resource, Mapping) and resource.get("address") == block.local:
                expression = (resource.get("expressions") or {}).get(attribute) or {}
                references = expression.get("references") or []
                return {
                    match.group(1)
                    for match in map(_ROLE_REFERENCE.match, _names(references))
                    if match
                }
        return set()

    def names(self, role: PlanBlock, other: PlanBlock, attribute: str) -> bool:
        """True when ``other``'s ``attribute`` (``role``, ``roles``) names ``role``."""
        name = role.body.get("name")
        value = other.body.get(attribute)
        if value is not None and name:
            return name in _names(value)
        if value is not None or other.module != role.module:
            return False
        if role.index is not None and other.index is not None and role.index != other.index:
            return False
        return role.name in self._referenced(other, attribute)


def _permissions(role: PlanBlock, others: list[PlanBlock], links: _Links) -> tuple[str, ...]:
    found: list[str] = []
    arns = role.body.get("managed_policy_arns")
    if arns:
        found.append(f"managed_policy_arns ({', '.join(_names(arns))})")
    for inline in role.body.get("inline_policy", []) or []:
        if isinstance(inline, Mapping) and inline.get("policy"):
            found.append(f"inline_policy {inline.get('name') or ''}".rstrip())
    for other in others:
        if (other.type in _ATTACHMENTS and links.names(role, other, "role")) or (
            other.type == "aws_iam_policy_attachment" and links.names(role, other, "roles")
        ):
            found.append(f"{other.address} ({other.where})")
    return tuple(found)


def read_plan(document: Mapping[str, Any], source: str) -> list[TerraformRole]:
    """Every ``aws_iam_role`` instance in a ``terraform show -json`` document read from ``source``."""
    if not is_plan(document):
        raise TerraformError(
            f"{source}: not the JSON of `terraform show -json` (no format_version with "
            "planned_values or values)",
            hint="Write it with `terraform show -json PLANFILE > plan.json`.",
        )
    planned = "planned_values" in document
    origin = "the plan (planned_values)" if planned else "the state (values)"
    root = (document.get("planned_values" if planned else "values") or {}).get("root_module")
    unknown = _unknown(document) if planned else {}
    blocks = [
        PlanBlock(
            str(resource.get("type", "")),
            str(resource.get("name", "")),
            resource.get("values") or {},
            source,
            1,
            str(resource.get("address", "")),
            resource.get("index"),
        )
        for resource in _resources(root)
    ]
    links = _Links(document)
    roles: list[TerraformRole] = []
    for block in blocks:
        if block.type != "aws_iam_role":
            continue
        document_, why = _policy(block, unknown.get(block.address, {}), origin)
        profiles = tuple(
            other
            for other in blocks
            if other.type == "aws_iam_instance_profile" and links.names(block, other, "role")
        )
        roles.append(
            TerraformRole(
                block,
                document_,
                origin,
                why,
                profiles,
                _permissions(block, blocks, links),
            )
        )
    return roles


def read_plan_text(text: str, source: str) -> list[TerraformRole]:
    """``read_plan`` of JSON text (a ``.json`` file's, or stdin's)."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise TerraformError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(document, Mapping):
        raise TerraformError(f"{source}: not the JSON of `terraform show -json`")
    return read_plan(document, source)
