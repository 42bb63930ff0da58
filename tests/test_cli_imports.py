"""The command-line modules import one way: ``cli`` above ``cli_broker`` and ``cli_trust``, and
``cli_args`` below them all."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imdscreds"


def imported_modules(module: str) -> set[str]:
    """Every ``imdscreds`` module ``module`` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("imdscreds.")}


@pytest.mark.parametrize("module", ["cli_broker", "cli_trust", "cli_args"])
def test_no_command_module_below_cli_imports_it(module: str) -> None:
    assert "imdscreds.cli" not in imported_modules(module)


def test_cli_args_imports_no_command_module() -> None:
    imported = imported_modules("cli_args")
    assert imported  # it reads the configuration: the walk found its imports
    assert not [name for name in imported if name.startswith("imdscreds.cli")]


def test_importing_cli_broker_and_building_its_parser_leaves_cli_unimported() -> None:
    code = (
        "import argparse, sys\n"
        "from imdscreds import cli_broker\n"
        "cli_broker.add_commands(argparse.ArgumentParser().add_subparsers())\n"
        "print('imdscreds.cli' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
