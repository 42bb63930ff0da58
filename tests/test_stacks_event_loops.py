"""Event-loop stacks, each a real process against a FakeIMDS rotating every 2 s.

A gevent process (``monkey.patch_all()`` first) uses the sync provider from fifty greenlets; an
asyncio app on uvloop uses ``imdscreds.aio`` from fifty tasks. Both must see every rotation,
raise nothing, and cost IMDS at most one credentials GET per rotation (+1 for the first fetch).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from stack_apps.support import assert_nothing_left_loopback, run_python, stack_env

from imdscreds.testing import FakeIMDS

SECONDS = 5.0


def _run(app: str, imds: FakeIMDS, tmp_path: Path) -> dict[str, object]:
    env = stack_env(
        tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint, STACK_SECONDS=str(SECONDS)
    )
    done = run_python(tmp_path, [app], timeout=SECONDS + 40, env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["errors"] == []
    gets = imds.count(f"/latest/meta-data/iam/security-credentials/{imds.role_name}")
    rotations = len(imds.issued_credentials)
    # Every set issued while the app ran was seen, bar perhaps the last one or two.
    assert len(answer["keys"]) >= rotations - 2 >= 1, (answer, rotations)  # type: ignore[arg-type]
    assert gets <= rotations + 1, (gets, rotations)
    assert_nothing_left_loopback(tmp_path)
    return answer


def test_a_gevent_patched_process_reads_through_rotations_with_the_sync_provider(
    fake_imds_factory: Callable[..., FakeIMDS], tmp_path: Path
) -> None:
    pytest.importorskip("gevent")
    answer = _run("gevent_app.py", fake_imds_factory(rotation=2.0, validity=5.0), tmp_path)
    assert answer["patched"] is True
    assert answer["finished"] == 50


def test_an_asyncio_app_on_uvloop_reads_through_rotations_with_imdscreds_aio(
    fake_imds_factory: Callable[..., FakeIMDS], tmp_path: Path
) -> None:
    pytest.importorskip("uvloop")
    pytest.importorskip("aiobotocore")
    answer = _run("uvloop_app.py", fake_imds_factory(rotation=2.0, validity=5.0), tmp_path)
    assert str(answer["loop"]).startswith("uvloop")
    assert int(answer["reads"]) > 1000  # type: ignore[call-overload]
