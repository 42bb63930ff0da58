"""Scenario 14: `imdscreds credentials` as a botocore `credential_process`, call by call.

Each call is a new botocore session whose profile names the command; botocore runs it, and it
fetches from a FakeIMDS on 127.0.0.1. Its peers, in the same run, are what any such command pays
before it does anything: starting Python (`python -c pass`) and importing botocore.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import botocore.session

from benchmarks.scenarios import AnyPeer, Settings, Table
from imdscreds.testing import FakeIMDS

CALLS = 20
_ROOT = Path(__file__).resolve().parent.parent
_COMMAND = f"{sys.executable} -m imdscreds credentials --format credential-process"


def _figures(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": statistics.median(ordered) * 1e3,
        "p90_ms": ordered[max(0, round(0.9 * len(ordered)) - 1)] * 1e3,
        "max_ms": ordered[-1] * 1e3,
    }


def _timed(call: Callable[[], None], calls: int) -> dict[str, float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return _figures(times)


def _python(code: str, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run([sys.executable, "-c", code], env=env, check=True)

    return run


def credential_process(peers: list[AnyPeer], settings: Settings) -> Table:
    calls = 5 if settings.quick else CALLS
    with FakeIMDS() as imds, tempfile.TemporaryDirectory(prefix="imdscreds-cp-") as root:
        config = Path(root) / "config"
        config.write_text(
            f"[profile imds-process]\ncredential_process = {_COMMAND}\n", encoding="utf-8"
        )
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AWS_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
        expected = imds.current_credentials.access_key_id
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)  # botocore hands the command this process's environment

        def through_botocore() -> None:
            session = botocore.session.Session(profile="imds-process")
            session.set_config_variable("config_file", str(config))
            credentials = session.get_credentials()
            if credentials is None or credentials.method != "custom-process":
                raise RuntimeError(f"credential_process was not used: {credentials!r}")
            if credentials.get_frozen_credentials().access_key != expected:
                raise RuntimeError("credential_process handed back another key")

        try:
            measured = {
                "imdscreds credential_process": _timed(through_botocore, calls),
                "python -c pass": _timed(_python("pass", env), calls),
                "python -c 'import botocore.session'": _timed(
                    _python("import botocore.session", env), calls
                ),
            }
        finally:
            os.environ.clear()
            os.environ.update(saved)
        requests = imds.count()
    base = measured["python -c pass"]["p50_ms"]
    return Table(
        number=14,
        title="`imdscreds credentials` as a botocore credential_process",
        setup=f"{calls} calls each, one after another: a new botocore session per call whose "
        f"profile's credential_process is `python -m imdscreds credentials --format "
        f"credential-process` against a FakeIMDS on 127.0.0.1 ({requests} IMDS requests in all); "
        f"the peers are a bare interpreter start and one that imports botocore.session.",
        columns=["command", "p50 ms", "p90 ms", "max ms", "p50 vs python -c pass"],
        rows=[
            [
                name,
                f"{figures['p50_ms']:,.1f}",
                f"{figures['p90_ms']:,.1f}",
                f"{figures['max_ms']:,.1f}",
                f"{figures['p50_ms'] / base:.1f}x",
            ]
            for name, figures in measured.items()
        ],
        data={"imdscreds": measured},
        notes=[
            "Wall time per call, process start included: botocore runs the command anew each "
            "time it needs credentials and caches nothing across sessions."
        ],
    )
