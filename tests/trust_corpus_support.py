"""Runs `trust explain` over tests/trust_corpus/ and sets each role beside its hand-checked answer.

Shared by tests/test_trust_corpus.py and benchmarks/trust_corpus_report.py.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdscreds.trust import explain_role, read_terraform

CORPUS_DIR = Path(__file__).resolve().parent / "trust_corpus"
# What an ``unresolved`` message must name: the value it could not see.
NAMES_A_VALUE = re.compile(r"\b(?:var|local|data|module|path)\.[\w-]+|\b(?:file|templatefile)\(")


def load_expected() -> dict[str, dict[str, Any]]:
    """EXPECTED from tests/trust_corpus/EXPECTED.py (loaded by path: the corpus is no package)."""
    spec = importlib.util.spec_from_file_location(
        "trust_corpus_expected", CORPUS_DIR / "EXPECTED.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    expected: dict[str, dict[str, Any]] = module.EXPECTED
    return expected


@dataclass(frozen=True)
class RoleResult:
    directory: str
    address: str
    verdict: str
    finding_ids: tuple[str, ...]
    unresolved: str | None
    expected: Any  # EXPECTED.Case

    @property
    def key(self) -> str:
        return f"{self.directory}:{self.address}"

    @property
    def false_warnings(self) -> tuple[str, ...]:
        """Ids reported that are not true of the role (``unresolved`` aside: counted as unknown)."""
        return tuple(
            finding
            for finding in self.finding_ids
            if finding != "unresolved" and finding not in self.expected.true_warnings
        )


@dataclass(frozen=True)
class CorpusRun:
    results: tuple[RoleResult, ...]
    errors: dict[str, str]  # directory -> exception, for a directory that raised
    wall_seconds: float


def run_corpus() -> CorpusRun:
    """read_terraform + explain_role on every corpus directory; an exception is recorded, not raised."""
    expected = load_expected()
    results: list[RoleResult] = []
    errors: dict[str, str] = {}
    started = time.perf_counter()
    for directory in sorted(expected):
        try:
            roles = read_terraform([str(CORPUS_DIR / directory)])
            for role in roles:
                explained = explain_role(role)
                address = role.block.address
                results.append(
                    RoleResult(
                        directory,
                        address,
                        explained.explanation.verdict,
                        tuple(finding.id for finding in explained.findings),
                        role.unresolved,
                        expected[directory].get(address),
                    )
                )
        except Exception as exc:  # the corpus records every failure, crash or TerraformError
            errors[directory] = f"{type(exc).__name__}: {exc}"
    return CorpusRun(tuple(results), errors, time.perf_counter() - started)
