"""The README's fault matrix cannot drift: every row names a test that exists, and every fault the
library promises to survive has a row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The faults every release must keep a row (and so a test) for.
REQUIRED = (
    "refused",
    "black hole",
    "trickle",
    "5xx",
    "429",
    "401 storm",
    "malformed",
    "huge",
    "non-UTF-8",
    "down across",
    "expired on arrival",
    "wall clock",
    "suspended",
    "fork",
    "throttling",
)


def matrix_rows() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## When things go wrong: the fault matrix", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]]


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_matrix_has_a_row_for_every_fault_the_library_survives() -> None:
    faults = " ".join(row[0] for row in matrix_rows())
    missing = [fault for fault in REQUIRED if fault not in faults]
    assert not missing, f"the README's fault matrix has no row for: {missing}"


@pytest.mark.parametrize("row", matrix_rows(), ids=lambda row: row[0][:40])
def test_every_row_names_a_test_that_exists(row: list[str]) -> None:
    assert len(row) == 4, f"a fault-matrix row needs 4 cells: {row}"
    names = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row[3])
    assert names, f"row {row[0]!r} names no test"
    for file, test in names:
        assert test in defined_tests(ROOT / file), f"{file} has no {test} (row {row[0]!r})"
