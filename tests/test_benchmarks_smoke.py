"""The benchmark program runs and writes its tables (no speed is asserted: benchmarks are their own
program, ``python -m benchmarks``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_a_markdown_table_per_scenario(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    # Two peers and three scenarios keep this to a few seconds; a subprocess keeps the harness's
    # threads, sockets and logging out of the test process.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "2,3,5",
            "--peers",
            "imdscreds,botocore",
            "--output",
            str(output),
            "--picture",
            str(tmp_path / "timeline.png"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    text = output.read_text(encoding="utf-8")
    for heading in (
        "## Machine",
        "## Versions",
        "## Targets (imdscreds)",
        "### 2.",
        "### 3.",
        "### 5.",
    ):
        assert heading in text
    results = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in results.splitlines() if line.startswith("| imdscreds |")]
    assert len(rows) == 3, results  # one per scenario
    assert "| zero caller exceptions in scenarios 3-6 |" in text
    assert "### 3." in run.stdout
