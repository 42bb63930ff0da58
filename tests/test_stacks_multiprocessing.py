"""multiprocessing's start methods while the parent's engine has a fetch in flight.

The parent's botocore session is fetching its first credentials from a FakeIMDS that holds the
answer for a second; meanwhile the test starts a pool. Forked children inherit the engine with its
lock held by a thread that does not exist in them: they must fetch for themselves, not wait.
Spawned and forkserver children build their own session from the environment. Every child must
answer the served key within a bounded time (a deadlock fails the ``get(timeout=...)``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import botocore.session
import pytest
from stack_apps import mp_children
from stack_apps.support import assert_nothing_left_loopback

import imdscreds
from imdscreds.testing import FakeIMDS

TASKS = 6


def _fetch_in_flight(fake_imds: FakeIMDS) -> tuple[threading.Thread, list[str]]:
    """Start the parent's first fetch in a thread; return once IMDS holds its first request."""
    session = botocore.session.Session()
    imdscreds.install(session)
    mp_children.SESSION = session
    keys: list[str] = []
    fake_imds.latency = 0.7  # under the token PUT's 1 s timeout
    fetch = threading.Thread(
        target=lambda: keys.append(session.get_credentials().get_frozen_credentials().access_key)
    )
    fetch.start()
    deadline = time.monotonic() + 5
    while fake_imds.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_imds.count() >= 1, "the parent's fetch never reached IMDS"
    fake_imds.latency = 0.0  # the request already held stays held; the children's are not
    return fetch, keys


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize(
    ("method", "runner"),
    [
        ("fork", "pool"),
        ("spawn", "pool"),
        ("forkserver", "pool"),
        ("fork", "executor"),
        ("forkserver", "executor"),
    ],
)
def test_children_started_while_the_parent_fetches_get_credentials(
    method: str,
    runner: str,
    fake_imds: FakeIMDS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    monkeypatch.setattr(mp_children, "SESSION", None)
    tasks = [(fake_imds.endpoint, str(tmp_path / "blocked.txt"))] * TASKS
    context = multiprocessing.get_context(method)
    fetch, parent_keys = _fetch_in_flight(fake_imds)
    try:
        if runner == "pool":
            with context.Pool(2) as pool:
                answers = pool.map_async(mp_children.child_key, tasks).get(timeout=30)
        else:
            with ProcessPoolExecutor(2, mp_context=context) as executor:
                futures = [executor.submit(mp_children.child_key, task) for task in tasks]
                answers = [future.result(timeout=30) for future in futures]
    finally:
        fetch.join(10)
    assert not fetch.is_alive(), "the parent's own fetch never finished"
    expected = fake_imds.current_credentials.access_key_id
    assert parent_keys == [expected]
    assert [key for _, key in answers] == [expected] * TASKS
    pids = {pid for pid, _ in answers}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2
    assert_nothing_left_loopback(tmp_path)
