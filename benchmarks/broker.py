"""The broker's scenarios: how fast it answers, and what a host of N processes costs IMDS.

9. Answer time: 32 client threads, each on its own keep-alive connection, GET the broker's
   credentials; beside them, in the same run, 32 threads GET the credentials document straight
   from FakeIMDS (with a session token), the request every SDK makes without a broker.
10. IMDS requests per rotation: N processes of plain botocore (import, load credentials once),
   started in waves of at most 32 so 128 fit on 2 cores, after each of a few rotations; without a
   broker each process asks IMDS itself; with one, they ask the broker. The broker runs in this
   process on a FakeClock shared with the FakeIMDS, advanced one rotation between waves, so the
   rotations take no wall time; the clients run on the real clock (the fake one starts at now and
   only moves ahead, so every set they get is current to them).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.harness import requests_by_kind
from benchmarks.scenarios import AnyPeer, Settings, Table
from imdscreds import IMDSClient, IMDSConfig, RoleCredentialsFetcher
from imdscreds.broker import Broker, TokenFile
from imdscreds.testing import FakeClock, FakeIMDS

CLIENT = str(Path(__file__).with_name("_broker_client.py"))
CLIENTS = 32
WAVE = 32
ROLE_PATH = "/latest/meta-data/iam/security-credentials-extended/imdscreds-demo-role"


def _broker(imds: FakeIMDS, token: TokenFile, clock: Any = None, **limits: float) -> Broker:
    config = IMDSConfig.resolve(endpoint=imds.endpoint, environ={}, config_file=os.devnull)
    extra = {} if clock is None else {"clock": clock}
    client = IMDSClient(config, **extra)
    fetch = RoleCredentialsFetcher(client).fetch
    broker = Broker(fetch, token=token.token, **extra, **limits).start()
    if not broker.wait_first_fetch(10) or broker.engine.peek() is None:
        raise RuntimeError("the broker got no credentials from the FakeIMDS")
    return broker


def _timed_gets(port: int, path: str, headers: dict[str, str], per_client: int) -> list[float]:
    """``CLIENTS`` threads, ``per_client`` GETs each, all released at once; seconds per GET."""
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def work() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        start.wait()
        for _ in range(per_client):
            began = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            assert response.status == 200, response.status
        connection.close()
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return times


def _quantiles(times: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000, max(times) * 1000


def answer_time(peers: list[AnyPeer], settings: Settings) -> Table:
    per_client = 50 if settings.quick else 300
    table = Table(
        10,
        "Broker answer time, 32 concurrent clients",
        f"{CLIENTS} threads, each with its own keep-alive connection, {per_client} GETs each, "
        "released together, in this process; the broker and the FakeIMDS share another process "
        "(2 cores for all of it), and are measured in the same run the same way. The broker's "
        "request-rate limit is lifted for this measurement.",
        ["endpoint", "GETs", "p50 ms", "p99 ms", "max ms"],
    )
    servers = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._servers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert servers.stdout is not None
        ready = json.loads(servers.stdout.readline())
        ours = _timed_gets(
            ready["broker_port"],
            "/credentials",
            {"Authorization": ready["broker_token"]},
            per_client,
        )
        direct = _timed_gets(
            ready["imds_port"],
            ROLE_PATH,
            {"X-aws-ec2-metadata-token": ready["imds_token"]},
            per_client,
        )
    finally:
        servers.communicate(timeout=30)
    for name, times in (
        ("imdscreds broker: GET /credentials (token checked)", ours),
        ("FakeIMDS: GET the credentials document (session token)", direct),
    ):
        p50, p99, worst = _quantiles(times)
        table.rows.append([name, f"{len(times):,}", f"{p50:.2f}", f"{p99:.2f}", f"{worst:.1f}"])
        table.data[name] = {"p50": p50, "p99": p99}
    table.notes.append(
        "Both are small JSON answers from a stdlib threaded HTTP server on loopback; the broker "
        "adds the Host, proxy and constant-time token checks and a rate-limit bucket. A real IMDS "
        "is a network hop away and throttled per instance, which is the point of the broker."
    )
    return table


def _client_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env.update(extra)
    return env


def _processes(count: int, env: dict[str, str]) -> tuple[int, int]:
    """Run ``count`` client processes in waves; (successes, errors)."""
    ok = errors = 0
    for first in range(0, count, WAVE):
        wave = [
            subprocess.Popen([sys.executable, CLIENT], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(min(WAVE, count - first))
        ]
        for process in wave:
            out, _ = process.communicate(timeout=300)
            if out.startswith("error") or not out.strip():
                errors += 1
            else:
                ok += 1
    return ok, errors


def per_rotation(peers: list[AnyPeer], settings: Settings) -> Table:
    sizes = (1, 8, 32) if settings.quick else (1, 8, 32, 128)
    rotations = 1 if settings.quick else 2
    table = Table(
        11,
        "IMDS requests per rotation for a host of N processes",
        f"N processes of plain botocore (import botocore, load credentials once through its "
        f"chain), started in waves of at most {WAVE}, once after each of {rotations} rotation(s) "
        "(FakeIMDS: a new set every hour, each valid 85 min, so the broker's refresh, 25-30 min before expiry, falls on the rotation). Without the broker each process's "
        "chain reaches IMDS (AWS_EC2_METADATA_SERVICE_ENDPOINT); with it, the two "
        "container-credentials variables point at an in-process broker whose clock is the "
        "FakeIMDS's, advanced an hour between waves (so it refreshes once per rotation).",
        ["N processes", "IMDS requests per rotation, no broker", "with the broker",
         "client errors (no broker / broker)", "wall s"],
    )  # fmt: skip
    for size in sizes:
        row: dict[str, Any] = {}
        began = time.perf_counter()
        for mode in ("direct", "broker"):
            clock = FakeClock(start=datetime.now(timezone.utc).replace(microsecond=0))
            with FakeIMDS(clock=clock, rotation=3600.0, validity=5100.0) as imds:
                env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint}
                token = broker = None
                if mode == "broker":
                    token = TokenFile.create()
                    broker = _broker(imds, token, clock)
                    env.update(
                        AWS_CONTAINER_CREDENTIALS_FULL_URI=broker.url,
                        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token.path),
                    )
                counts, errors = [], 0
                try:
                    for _ in range(rotations):
                        imds.reset_counts()
                        clock.advance(3600.0)
                        time.sleep(0.05)  # the broker's prefetch thread refreshes
                        _, failed = _processes(size, _client_env(env))
                        time.sleep(0.05)
                        counts.append(sum(requests_by_kind(imds.requests).values()))
                        errors += failed
                finally:
                    if broker is not None and token is not None:
                        broker.stop()
                        token.remove()
            row[mode] = (statistics.mean(counts), errors)
        table.data[str(size)] = {"direct": row["direct"][0], "broker": row["broker"][0]}
        table.rows.append(
            [
                str(size),
                f"{row['direct'][0]:.0f}",
                f"{row['broker'][0]:.0f}",
                f"{row['direct'][1]} / {row['broker'][1]}",
                f"{time.perf_counter() - began:.1f}",
            ]
        )
    return table


def draw(tables: list[Table], path: Path) -> str | None:
    """The per-rotation picture; None, or why it was not drawn."""
    found = [t for t in tables if t.number == 11]
    if not found:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'imdscreds[bench]'): no broker.png"
    data = found[0].data
    sizes = [int(n) for n in data]
    figure, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(sizes, [data[str(n)]["direct"] for n in sizes], "o-", label="no broker (each process)")
    ax.plot(sizes, [max(data[str(n)]["broker"], 0.5) for n in sizes], "s-", label="imdscreds serve")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("processes on the host")
    ax.set_ylabel("IMDS requests per rotation")
    ax.set_title("10. IMDS requests per rotation", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None
