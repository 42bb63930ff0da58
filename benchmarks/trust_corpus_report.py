"""`trust explain` over the public-Terraform corpus (tests/trust_corpus): how many roles it decides.

Run: ``python -m benchmarks.trust_corpus_report``. Prints the number of roles, how many stay
unknown (over all roles, and over EC2 instance roles of Terraform Registry modules), the false
warnings by finding id (warnings the hand check in tests/trust_corpus/EXPECTED.py says are not
true), decided verdicts that differ from the hand check, and the wall time of one pass.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# The corpus and its runner live beside the tests; the report reads them from there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from trust_corpus_support import run_corpus


def _rate(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / max(whole, 1):.0f}%)"


def report() -> str:
    run = run_corpus()
    results = run.results
    directories = {result.directory for result in results} | set(run.errors)
    unknown = [r for r in results if r.verdict == "unknown"]
    ec2_registry = [r for r in results if r.expected.ec2_role and r.expected.registry]
    ec2_registry_unknown = [r for r in ec2_registry if r.verdict == "unknown"]
    wrong = [r for r in results if r.verdict != "unknown" and r.verdict != r.expected.verdict]
    false = Counter(finding for r in results for finding in r.false_warnings)
    lines = [
        f"trust corpus: {len(directories)} directories, {len(results)} roles "
        f"({sum(r.expected.ec2_role for r in results)} EC2 instance roles, "
        f"{len(ec2_registry)} of them from registry modules)",
        f"errors (a directory that raised): {len(run.errors)}",
        *(f"  {directory}: {error}" for directory, error in sorted(run.errors.items())),
        f"unknown, all roles: {_rate(len(unknown), len(results))}",
        f"unknown, EC2 roles from registry modules: "
        f"{_rate(len(ec2_registry_unknown), len(ec2_registry))}",
        *(f"  unknown: {r.key}: {r.unresolved}" for r in unknown),
        f"decided verdicts that differ from the hand check: {len(wrong)}",
        *(f"  {r.key}: {r.verdict} (expected {r.expected.verdict})" for r in wrong),
        f"false warnings: {sum(false.values())}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(false.items())) + ")" if false else ""),
        *(f"  {r.key}: {', '.join(r.false_warnings)}" for r in results if r.false_warnings),
        f"wall time, read_terraform + explain_role over the corpus: {run.wall_seconds * 1e3:.0f} ms",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
