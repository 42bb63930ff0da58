"""What the stack tests share: the environment of the processes they start, and its guard check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def stack_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The suite's environment plus the guard: every Python started with it imports ``sitecustomize``
    from this folder, which arms the network guard and reports to ``tmp_path/blocked.txt``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    env["IMDSCREDS_STACK_GUARD"] = str(tmp_path / "blocked.txt")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def assert_nothing_left_loopback(tmp_path: Path) -> None:
    report = tmp_path / "blocked.txt"
    blocked = report.read_text(encoding="utf-8") if report.exists() else ""
    assert blocked == "", f"a process tried to reach beyond loopback:\n{blocked}"


def run_python(
    tmp_path: Path, args: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python args...`` with the guard on; fails the test on a time-out."""
    return subprocess.run(
        [sys.executable, *args],
        env=stack_env(tmp_path) if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=HERE,
    )
