"""Variable values as ``terraform plan`` takes them: tfvars files beside a module, then the command line.

Terraform's order, later wins: ``terraform.tfvars``, ``terraform.tfvars.json``, every
``*.auto.tfvars`` / ``*.auto.tfvars.json`` in lexical order of their names, then each ``-var-file``
and ``-var`` in the order given on the command line. A variable file holds only literal values (no
references, no function calls). A ``-var name=value`` is taken literally, as a string, when the
variable is declared with no type or a primitive one (``string``, ``number``, ``bool``; a number or
bool is then converted from that string); with a complex type (``list(...)``, ``map(...)``,
``object(...)``, ``any``...) the value is parsed as an HCL expression, ``-var 'ids=["a","b"]'``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imdscreds.trust.terraform import TerraformError, _hcl2, _load

__all__ = [
    "CommandLine",
    "Variables",
    "auto_files",
    "declared_types",
    "module_directories",
    "read_variable_file",
    "read_variables",
]

_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
_PRIMITIVE = {"string", "number", "bool"}


@dataclass(frozen=True)
class CommandLine:
    """One ``-var name=value`` (``kind="var"``) or ``-var-file PATH`` (``kind="var-file"``)."""

    kind: str
    value: str


@dataclass(frozen=True)
class Variables:
    """Variable values by name (no ``var.`` prefix), and the variable files read, in order."""

    values: Mapping[str, object]
    files: tuple[str, ...]
    # What -var-file and -var said, alone: each module reads its own tfvars files beside it.
    command_line: Mapping[str, object] = field(default_factory=dict)

    def as_values(self) -> dict[str, object]:
        """The values keyed as ``read_terraform`` looks them up: ``var.NAME``."""
        return {f"var.{name}": value for name, value in self.values.items()}


def module_directories(paths: Sequence[str]) -> list[str]:
    """The directories among ``paths``: the modules whose tfvars files Terraform would read."""
    return [path for path in paths if path != "-" and Path(path).is_dir()]


def auto_files(directory: str) -> list[str]:
    """The variable files Terraform reads by itself in ``directory``, in its order."""
    base = Path(directory)
    found = [str(base / name) for name in ("terraform.tfvars", "terraform.tfvars.json")]
    found = [name for name in found if Path(name).is_file()]
    auto = [
        item
        for item in base.iterdir()
        if item.is_file() and item.name.endswith((".auto.tfvars", ".auto.tfvars.json"))
    ]
    found.extend(str(base / item.name) for item in sorted(auto, key=lambda item: item.name))
    return found


def _literal_only(value: object, shown: str, name: str) -> object:
    """A variable file's value, refused when it holds an expression Terraform would not evaluate."""
    if isinstance(value, str) and "${" in value:
        raise TerraformError(
            f"{shown}: {name} = {value}: a variable file holds literal values only",
            hint="Write the value itself (a string, number, bool, list or map), not a reference "
            "or a function call.",
        )
    if isinstance(value, Mapping):
        return {str(k): _literal_only(v, shown, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_only(item, shown, name) for item in value]
    return value


def read_variable_file(path: str) -> dict[str, object]:
    """One ``.tfvars`` (HCL) or ``.tfvars.json`` file: its assignments, by variable name."""
    file = Path(path)
    if not file.is_file():
        raise TerraformError(
            f"{path}: no such variable file",
            hint="Check the path given to -var-file (relative to the current directory).",
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TerraformError(f"{path}: cannot be read ({exc.__class__.__name__})") from exc
    if path.endswith(".json"):
        try:
            loaded: object = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TerraformError(
                f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                hint='A .tfvars.json file is one JSON object: {"name": value, ...}.',
            ) from exc
        if not isinstance(loaded, dict):
            raise TerraformError(
                f"{path}: a .tfvars.json file must hold a JSON object, not {type(loaded).__name__}",
                hint='Write {"name": value, ...}.',
            )
        return {str(name): value for name, value in loaded.items()}
    try:
        parsed = _load(_hcl2(), text)
    except ImportError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TerraformError(
            f"{path}: not a valid variable file: {first}",
            hint='A .tfvars file holds lines of name = value (strings quoted: name = "x").',
        ) from exc
    return {name: _literal_only(value, path, name) for name, value in parsed.items()}


def declared_types(paths: Sequence[str]) -> dict[str, str | None]:
    """The variables declared in the ``.tf`` files of ``paths``: name -> type (None: no type)."""
    hcl2 = _hcl2()
    declared: dict[str, str | None] = {}
    for given in paths:
        path = Path(given)
        files = sorted(path.glob("*.tf")) if path.is_dir() else [path]
        for file in files:
            if file.suffix != ".tf" or not file.is_file():
                continue
            try:
                loaded = _load(hcl2, file.read_text(encoding="utf-8"))
            except Exception:  # noqa: BLE001, S112 - read_terraform reports the file itself
                continue
            for entry in loaded.get("variable", []) or []:
                for name, body in entry.items():
                    kind = body.get("type") if isinstance(body, Mapping) else None
                    declared[name] = None if kind is None else _strip(str(kind))
    return declared


def _strip(expression: str) -> str:
    expression = expression.strip()
    if expression.startswith("${") and expression.endswith("}"):
        expression = expression[2:-1].strip()
    return expression


def _typed(name: str, raw: str, kind: str | None) -> object:
    """``-var name=raw``: literal for no type or a primitive one, an HCL expression otherwise."""
    shown = f"-var {name}={raw}"
    if kind is None or kind == "string":
        return raw
    if kind == "number":
        try:
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(raw)
        except ValueError:
            raise TerraformError(
                f"{shown}: var.{name} is declared type = number; {raw!r} is not a number",
                hint=f"Give a number: -var {name}=3",
            ) from None
        return int(number) if number.is_integer() and "." not in raw and "e" not in raw else number
    if kind == "bool":
        if raw not in ("true", "false"):
            raise TerraformError(
                f"{shown}: var.{name} is declared type = bool; {raw!r} is not true or false",
                hint=f"Give true or false: -var {name}=true",
            )
        return raw == "true"
    try:
        parsed = _load(_hcl2(), f"value = {raw}\n")["value"]
    except ImportError:
        raise
    except Exception as exc:
        raise TerraformError(
            f"{shown}: var.{name} is declared type = {kind}, so its value is read as HCL, and "
            f"{raw!r} is not a valid HCL value ({type(exc).__name__})",
            hint=f'Quote it for the shell, HCL inside: -var \'{name}=["a", "b"]\' for a list, '
            f"-var '{name}={{key = \"value\"}}' for a map.",
        ) from exc
    return _literal_only(parsed, f"-var {name}", name)


def _assignment(text: str) -> tuple[str, str]:
    name, equals, raw = text.partition("=")
    name = name.strip()
    if not equals or not _NAME.match(name):
        raise TerraformError(
            f"-var {text!r}: expected NAME=VALUE",
            hint="Write -var name=value, e.g. -var role_name=app (quote it for the shell: -var "
            "'ids=[\"a\"]').",
        )
    return name, raw


def read_variables(paths: Sequence[str], command_line: Iterable[CommandLine] = ()) -> Variables:
    """The variables ``terraform plan`` would see for the modules in ``paths``, with their files.

    tfvars files beside each directory in ``paths`` first, then ``command_line`` in order.
    """
    values: dict[str, object] = {}
    files: list[str] = []
    for directory in module_directories(paths):
        for file in auto_files(directory):
            values.update(read_variable_file(file))
            files.append(file)
    declared: dict[str, str | None] | None = None
    given: dict[str, object] = {}
    for item in command_line:
        if item.kind == "var-file":
            given.update(read_variable_file(item.value))
            files.append(item.value)
            continue
        name, raw = _assignment(item.value)
        if declared is None:
            declared = declared_types(paths)
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise TerraformError(
                f"-var {item.value}: no variable {name!r} is declared in "
                f"{', '.join(paths)} (declared: {known})",
                hint=f'Check the name, or declare it: variable "{name}" {{}}',
            )
        given[name] = _typed(name, raw, declared[name])
    values.update(given)
    return Variables(values, tuple(files), given)
