"""The aws-credentials-imds peer's side: runs under Python >= 3.12 in its own venv.

It reads one JSON command per line on stdin and answers one JSON line on stdout. It imports only
the standard library, aws-credentials-imds and imdscreds' network guard (loaded from its file, which
needs nothing but the standard library), so it needs no imdscreds install.

The library is asyncio-only: the benchmark's "threads" are tasks on one event loop here (for the
hot path, threads each running their own loop over the shared resolver). It reads time with
``datetime.now()`` in two modules; in a simulated run both names are swapped for a ``datetime``
whose ``now()`` is the simulated instant the driver sends with every step.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aws_credentials_imds import IMDSConfig, IMDSCredentialsResolver
from aws_credentials_imds import client as imds_client
from aws_credentials_imds import resolvers as imds_resolvers
from smithy_core import URI

_SIM_NOW: datetime | None = None  # aware UTC while a simulated run lasts


class _SimDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        now = _SIM_NOW
        if now is None:
            return datetime.now(tz)
        # client.py compares naive local datetimes with each other; naive UTC serves as well.
        return now.astimezone(tz) if tz is not None else now.replace(tzinfo=None)


def _resolver(endpoint: str) -> IMDSCredentialsResolver:
    parts = urlsplit(endpoint)
    assert parts.hostname == "127.0.0.1", f"refusing to run against {endpoint!r}"
    uri = URI(scheme="http", host=parts.hostname, port=parts.port)
    return IMDSCredentialsResolver(config=IMDSConfig(endpoint_uri=uri))


async def _get(resolver: IMDSCredentialsResolver) -> str:
    identity = await resolver.get_identity(properties={})
    return identity.access_key_id


class Worker:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.resolver: IMDSCredentialsResolver | None = None

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _make(self, endpoint: str) -> IMDSCredentialsResolver:
        return _resolver(endpoint)  # aiohttp wants its session made inside the loop

    def op_open(self, endpoint: str, now: str | None) -> dict[str, Any]:
        global _SIM_NOW  # noqa: PLW0603 - the one seam this library has
        if now is not None:
            imds_resolvers.datetime = _SimDatetime  # type: ignore[misc]
            imds_client.datetime = _SimDatetime  # type: ignore[misc]
            _SIM_NOW = datetime.fromisoformat(now)
        self.resolver = self.run(self._make(endpoint))
        self.run(_get(self.resolver))
        return {}

    def op_step(self, now: str, callers: int, calls: int) -> dict[str, Any]:
        global _SIM_NOW  # noqa: PLW0603
        _SIM_NOW = datetime.fromisoformat(now)
        resolver = self.resolver
        assert resolver is not None
        keys: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        waits: list[float] = []

        async def caller() -> None:
            for _ in range(calls):
                began = time.perf_counter()
                try:
                    keys[await _get(resolver)] += 1
                except Exception as exc:  # noqa: BLE001 - counted, as a caller would see it
                    errors[type(exc).__name__] += 1
                waits.append(time.perf_counter() - began)

        async def everyone() -> None:
            await asyncio.gather(*(caller() for _ in range(callers)))

        self.run(everyone())
        return {"calls": callers * calls, "keys": keys, "errors": errors, "max_wait": max(waits)}

    def op_hot(self, endpoint: str, threads: int, calls: int, repeats: int) -> dict[str, Any]:
        resolver = self.run(self._make(endpoint))
        self.run(_get(resolver))

        def batch() -> None:
            async def loop() -> None:
                for _ in range(calls):
                    await resolver.get_identity(properties={})

            asyncio.run(loop())

        samples = []
        for _ in range(repeats):
            began = time.perf_counter_ns()
            if threads == 1:
                batch()
            else:
                workers = [threading.Thread(target=batch) for _ in range(threads)]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
            samples.append((time.perf_counter_ns() - began) / (threads * calls))
        return {"ns": statistics.median(samples)}

    def op_cold(self, endpoint: str) -> dict[str, Any]:
        async def cold() -> float:
            began = time.perf_counter()
            await _get(_resolver(endpoint))
            return time.perf_counter() - began

        return {"seconds": self.run(cold())}

    def op_give_up(self, endpoint: str, cap: float) -> dict[str, Any]:
        async def attempt() -> str:
            try:
                await asyncio.wait_for(_get(_resolver(endpoint)), cap)
            except asyncio.TimeoutError:
                return f"still waiting after {cap:g} s"
            except Exception as exc:  # noqa: BLE001 - the outcome is what we report
                return f"raised {type(exc).__name__}"
            return "got credentials"

        began = time.perf_counter()
        outcome = self.run(attempt())
        return {"seconds": time.perf_counter() - began, "outcome": outcome}


def _load_guard(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("_imdscreds_guard", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main() -> int:
    guard = _load_guard(sys.argv[1])
    worker = Worker()
    with guard.block_non_loopback() as blocked:
        for line in sys.stdin:
            command = json.loads(line)
            op = command.pop("op")
            if op == "close":
                break
            try:
                answer = getattr(worker, f"op_{op}")(**command)
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which decides
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            answer["blocked"] = [str(attempt) for attempt in blocked.blocked]
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
