"""An asyncio app on uvloop: aiobotocore with imdscreds.aio installed, fifty tasks reading.

Besides the readers a ticker records the longest gap between its 10 ms sleeps: a refresh runs its
blocking IMDS requests in a thread, so the loop keeps turning while IMDS takes its time.
"""

from __future__ import annotations

import asyncio
import time

import uvloop
from aiobotocore.session import AioSession
from rotations import POLICY, SECONDS, report

import imdscreds.aio


async def main() -> None:
    session = AioSession()
    imdscreds.aio.install(session, policy=POLICY)
    credentials = await session.get_credentials()
    keys: set[str] = set()
    errors: list[str] = []
    reads = 0
    lag = 0.0
    end = time.monotonic() + SECONDS

    async def reader() -> None:
        nonlocal reads
        while time.monotonic() < end:
            try:
                frozen = await credentials.get_frozen_credentials()
                keys.add(frozen.access_key)
                reads += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.005)

    async def ticker() -> None:
        nonlocal lag
        while time.monotonic() < end:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lag = max(lag, time.monotonic() - before - 0.01)

    await asyncio.wait_for(asyncio.gather(ticker(), *(reader() for _ in range(50))), SECONDS + 20)
    loop = type(asyncio.get_running_loop()).__module__
    report(keys=sorted(keys), errors=errors[:5], reads=reads, loop=loop, lag=round(lag, 3))


uvloop.run(main())
