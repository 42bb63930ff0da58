"""The aws-credentials-imds peer: it needs Python >= 3.12, so it runs in a subprocess of its own.

The venv lives in ``benchmarks/.venv-peer`` (gitignored), made on first use with a Python >= 3.12
found on PATH, in pyenv, or named by ``IMDSCREDS_BENCH_PYTHON312``, and the package installed from
PyPI with pip. The subprocess (``_sdk_worker.py``) answers JSON commands; the FakeIMDS and its clock
stay in this process, and each simulated step carries the simulated time across.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.harness import StepStats, assert_loopback
from imdscreds.testing import FakeClock, FakeIMDS, guard

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-peer"
WORKER = HERE / "_sdk_worker.py"
PACKAGE = "aws-credentials-imds"


class PeerUnavailable(Exception):
    """The peer cannot run here; the message says why, for the report."""


def _python312() -> str:
    candidates = [os.environ.get("IMDSCREDS_BENCH_PYTHON312", "")]
    candidates += [shutil.which(name) or "" for name in ("python3.13", "python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python")))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return candidate
    raise PeerUnavailable("no Python >= 3.12 found (set IMDSCREDS_BENCH_PYTHON312)")


def ensure_venv() -> Path:
    """The peer venv's python, creating the venv and installing the package when needed."""
    python = VENV / "bin" / "python"
    if python.exists():
        check = subprocess.run(
            [python, "-c", "import aws_credentials_imds"], capture_output=True, check=False
        )
        if check.returncode == 0:
            return python
    base = _python312()
    made = subprocess.run(
        [base, "-m", "venv", "--clear", VENV], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        raise PeerUnavailable(f"could not make {VENV}: {made.stderr.strip()[-300:]}")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        raise PeerUnavailable(f"pip install {PACKAGE} failed: {installed.stderr.strip()[-300:]}")
    return python


class _Worker:
    """One subprocess running ``_sdk_worker.py``; commands in, answers out."""

    def __init__(self, python: Path) -> None:
        # Closed in close(); the worker's stderr, kept for the message if it dies.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self._process = subprocess.Popen(
            [python, WORKER, guard.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
        )

    def ask(self, op: str, **arguments: Any) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise RuntimeError(f"{PACKAGE} worker died: {self._stderr.read()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        if answer.get("blocked"):
            raise RuntimeError(f"{PACKAGE} tried to leave loopback: {answer['blocked']}")
        if "error" in answer:
            raise RuntimeError(f"{PACKAGE} worker: {answer['error']}")
        return answer

    def close(self) -> None:
        stdin = self._process.stdin
        try:
            if stdin is not None and self._process.poll() is None:
                stdin.write(json.dumps({"op": "close"}) + "\n")
                stdin.flush()
        except BrokenPipeError:
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()


class _SubprocessSession:
    def __init__(self, worker: _Worker, clock: FakeClock, callers: int) -> None:
        self._worker = worker
        self._clock = clock
        self._callers = callers

    def step(self, calls: int) -> StepStats:
        answer = self._worker.ask(
            "step", now=self._clock.now().isoformat(), callers=self._callers, calls=calls
        )
        return StepStats(
            calls=answer["calls"],
            keys=Counter(answer["keys"]),
            errors=Counter(answer["errors"]),
            max_wait=answer["max_wait"],
        )

    def close(self) -> None:
        self._worker.close()


class SdkPeer:
    """aws-credentials-imds' ``IMDSCredentialsResolver`` with its defaults, endpoint_uri the fake."""

    name = "aws-credentials-imds"
    distribution = PACKAGE
    note = (
        "IMDSCredentialsResolver.get_identity() (asyncio: tasks on one loop stand for threads), "
        "run under Python >= 3.12 in a subprocess; simulated runs swap its modules' datetime"
    )

    def __init__(self) -> None:
        self._python: Path | None = None
        self._shared: _Worker | None = None  # for the one-off commands: hot, cold, give_up
        self.version = ""

    def prepare(self) -> None:
        """Make the venv (or raise PeerUnavailable); read the version installed."""
        self._python = ensure_venv()
        probe = subprocess.run(
            [
                self._python,
                "-c",
                "import sys, aws_credentials_imds as m; print(m.__version__);"
                "print(sys.version.split()[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        version, python = probe.stdout.split()
        self.version = f"{version} (Python {python})"

    def _worker(self) -> _Worker:
        if self._python is None:
            self.prepare()
        assert self._python is not None
        return _Worker(self._python)

    def _once(self, op: str, **arguments: Any) -> dict[str, Any]:
        if self._shared is None:
            self._shared = self._worker()
        return self._shared.ask(op, **arguments)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def hot_path(self, endpoint: str, threads: int, calls: int, repeats: int) -> float:
        answer = self._once(
            "hot", endpoint=assert_loopback(endpoint), threads=threads, calls=calls, repeats=repeats
        )
        return float(answer["ns"])

    def cold_start(self, endpoint: str) -> float:
        return float(self._once("cold", endpoint=assert_loopback(endpoint))["seconds"])

    def give_up(self, endpoint: str, cap: float) -> tuple[float, str]:
        answer = self._once("give_up", endpoint=assert_loopback(endpoint), cap=cap)
        return float(answer["seconds"]), str(answer["outcome"])

    def sim(self, fake: FakeIMDS, clock: FakeClock, threads: int) -> _SubprocessSession:
        worker = self._worker()
        try:
            worker.ask("open", endpoint=assert_loopback(fake.endpoint), now=clock.now().isoformat())
        except BaseException:
            worker.close()
            raise
        return _SubprocessSession(worker, clock, threads)
