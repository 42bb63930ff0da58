"""Scenario 12: a legitimate client of the broker while slow-request attackers hold connections.

The broker and its FakeIMDS run in one process, each attacker (``benchmarks/attackers.py``) in
another, and the client here: plain HTTP GETs with the token, a new connection each (what an SDK
does when its pooled connection is gone), 2 s timeout (botocore's container fetcher's) and no
retry, so that every refusal counts. Attacks: connections that trickle one header byte every
3 s, and silent connections reopened the moment the server drops them. The same runs against the
server before the event loop (its ``server.py`` at ``BEFORE``, from git), when git has it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.scenarios import AnyPeer, Settings, Table

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "040b8bdbfe912831295d039674dc0db1c6e0d75d"  # the thread-per-connection server
TRICKLE_INTERVAL = 3.0
SETTLE = 0.5
# The GETs of a row are spread over this long: longer than the broker's 3 s head deadline, so
# attackers are dropped and reconnect while the client works.
SPREAD = 3.5
BUDGET = SPREAD + 2.0  # seconds of GETs per row, at most
# 5,000 is above the broker's cap of 4,096 waiting connections: every accept drops the oldest.
ATTACKS = (("none", 0, 0), ("trickle", 100, 0), ("trickle", 1000, 0), ("reconnect", 0, 1000),
           ("both", 1000, 1000), ("over the cap", 0, 5000))  # fmt: skip


def _before_source(directory: Path) -> Path | None:
    path = directory / "server_before.py"
    try:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE}:imdscreds/broker/server.py"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def _process(argv: list[str]) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    process = subprocess.Popen(
        [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        yield process, json.loads(process.stdout.readline())
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _last_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    line = process.stdout.readline()
    return json.loads(line) if line.strip() else {}


def _gets(port: int, token: str, count: int) -> tuple[int, list[float]]:
    """``count`` GETs spread over SPREAD seconds (at most BUDGET): (attempts, seconds of each
    that got a 200)."""
    times: list[float] = []
    attempts = 0
    first = time.perf_counter()
    stop = first + BUDGET
    while attempts < count and time.perf_counter() < stop:
        time.sleep(max(0.0, first + attempts * SPREAD / count - time.perf_counter()))
        attempts += 1
        began = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/credentials", headers={"Authorization": token})
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                times.append(time.perf_counter() - began)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
    return attempts, times


def _row(source: Path | None, trickle: int, silent: int, count: int) -> dict[str, Any]:
    server_argv = ["-m", "benchmarks._servers", "--limits"]
    if source is not None:
        server_argv += ["--source", str(source)]
    with contextlib.ExitStack() as stack:
        _, ready = stack.enter_context(_process(server_argv))
        attackers = []
        for how, number in (("trickle", trickle), ("silent", silent)):
            if number:
                argv = ["-m", "benchmarks.attackers", str(ready["broker_port"]), str(number), how,
                        str(TRICKLE_INTERVAL)]  # fmt: skip
                attackers.append(stack.enter_context(_process(argv))[0])
        time.sleep(SETTLE if attackers else 0.0)
        attempts, times = _gets(ready["broker_port"], ready["broker_token"], count)
        reopened = sum(_last_line(process).get("reopened", 0) for process in attackers)
    return {"attempts": attempts, "times": times, "reopened": reopened}


def _ms(times: list[float], quantile: int) -> str:
    if len(times) < 2:
        return "—" if not times else f"{times[0] * 1000:.1f}"
    return f"{statistics.quantiles(times, n=100, method='inclusive')[quantile - 1] * 1000:.1f}"


def under_attack(peers: list[AnyPeer], settings: Settings) -> Table:
    count = 40 if settings.quick else 200
    table = Table(
        12,
        "Legitimate client under attack",
        f"Up to {count} GETs of /credentials with the token (each on a new connection, 2 s "
        f"timeout, no retry; spread over {SPREAD:g} s) while attackers hold "
        f"connections: trickling ones send one header byte every {TRICKLE_INTERVAL:g} s, "
        "reconnecting ones are silent and reopen each connection the moment the server drops it "
        "(both reopen whatever is dropped). Broker with its defaults (3 s for a head, 4,096 "
        "waiting connections, the oldest dropped beyond), FakeIMDS and the broker in "
        "one process, each attacker in another, the client in this one; 2 cores for all. "
        "'before' is the thread-per-connection server (64 connections, 5 s per read) at "
        f"{BEFORE[:7]}.",
        ["server", "trickling", "reconnecting", "GETs answered 200", "p50 ms", "p99 ms",
         "attacker reconnects"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        before = _before_source(Path(directory))
        servers: list[tuple[str, Path | None]] = [("imdscreds", None)]
        if before is not None:
            servers.append(("before", before))
        else:
            table.notes.append(f"git could not show {BEFORE[:7]}: no 'before' rows.")
        for name, source in servers:
            for label, trickle, silent in ATTACKS:
                if name == "before" and silent > 1000:
                    continue  # 0% from 100 trickling on: the point is made, the run kept short
                result = _row(source, trickle, silent, count)
                ok, attempts = len(result["times"]), result["attempts"]
                table.data[f"{name}/{label}/{trickle}/{silent}"] = {
                    "ok": ok, "attempts": attempts,
                    "p99": _ms(result["times"], 99) if result["times"] else None,
                }  # fmt: skip
                table.rows.append([
                    name, f"{trickle:,}", f"{silent:,}",
                    f"{ok}/{attempts} ({ok / max(attempts, 1):.0%})",
                    _ms(result["times"], 50), _ms(result["times"], 99),
                    f"{result['reopened']:,}",
                ])  # fmt: skip
    table.notes.append(
        "Above the cap (5,000 reconnecting) every accept drops the oldest waiting connection and the attacker reopens it at once, so the loop spends its time accepting: every GET that was sent was answered, but some waited in a full listen queue for the client's SYN to be sent again, and fewer GETs fit in the row's time. The 'before' server answers none from 100 trickling connections on (it has 64 threads); its row above the cap is not run."
    )
    return table


def targets(tables: dict[int, Table]) -> list[list[str]]:
    """Scenario 12's target: every GET answered, p99 under 100 ms, under both attacks at once."""
    table = tables.get(12)
    found = None if table is None else table.data.get("imdscreds/both/1000/1000")
    if found is None:
        return []
    p99 = found["p99"]
    met = found["ok"] == found["attempts"] and p99 is not None and float(p99) < 100
    return [
        [
            "broker: 100% of a client's GETs answered, p99 < 100 ms, under 1,000 trickling + "
            "1,000 reconnecting connections",
            f"{found['ok']}/{found['attempts']}, p99 {p99} ms",
            "met" if met else "missed",
        ]
    ]
