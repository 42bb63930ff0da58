"""A process's whole life with the engine in it, each in a real child Python (``stack_apps/lifecycle_app.py``).

Exit (end of script, ``sys.exit()`` from a thread, exit while a refresh hangs on a black hole),
SIGINT while the main thread refreshes, ``imdscreds credentials`` as a botocore
``credential_process``, a thousand sessions made and dropped, thousands of rotations, and 32 threads
through rotations. Each child is bounded in time; the figures they measure are printed (run with
``-s`` to see them).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from stack_apps.support import HERE, assert_nothing_left_loopback, run_python, stack_env

from imdscreds.testing import FakeIMDS

APP = "lifecycle_app.py"
CHILD_LIMIT = 20.0  # seconds a child of this file may live at most
EXIT_BOUND = 5.0  # seconds: generous, to catch a hang; the measured figure is printed


def _answer(stdout: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return answer


def _start(tmp_path: Path, mode: str, endpoint: str) -> subprocess.Popen[str]:
    """Start the app in ``mode``; it is killed after CHILD_LIMIT seconds whatever it does, so a
    read of its output never blocks longer than that."""
    child = subprocess.Popen(
        [sys.executable, APP, mode],
        env=stack_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    watchdog = threading.Timer(CHILD_LIMIT, child.kill)
    watchdog.daemon = True
    watchdog.start()
    return child


def _line(child: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's next JSON line (its stdout is unbuffered: PYTHONUNBUFFERED)."""
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"the child ended early: {child.wait(5)} {child.stderr and child.stderr.read()}"
    answer: dict[str, Any] = json.loads(line)
    return answer


def _tell(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def _wait_exit(child: subprocess.Popen[str], since: float) -> tuple[float, str]:
    try:
        _, stderr = child.communicate(timeout=EXIT_BOUND + 5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"the child did not exit within {EXIT_BOUND + 5} s")
    return time.monotonic() - since, stderr


def _exited_cleanly(child: subprocess.Popen[str], label: str, tmp_path: Path) -> None:
    """Wait for the child's exit from its last line on; it must be prompt, clean and quiet."""
    took, stderr = _wait_exit(child, time.monotonic())
    print(f"\n{label}: exited {took:.3f} s after its last line")
    assert child.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert took < EXIT_BOUND
    assert_nothing_left_loopback(tmp_path)


@pytest.mark.parametrize("mode", ["exit-normal", "exit-thread"])
def test_a_process_with_a_prefetching_engine_exits_promptly(
    mode: str, fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    child = _start(tmp_path, mode, fake_imds.endpoint)
    said = _line(child)
    _exited_cleanly(child, mode, tmp_path)
    assert said == {"key": fake_imds.current_credentials.access_key_id, "exiting": True}


def test_a_process_exits_promptly_while_its_prefetch_thread_waits_on_a_black_hole(
    fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    child = _start(tmp_path, "exit-mid-refresh", fake_imds.endpoint)
    ready = _line(child)
    assert ready["key"] == fake_imds.current_credentials.access_key_id
    fake_imds.scenario = "blackhole"
    held = fake_imds.count()
    _tell(child)
    said = _line(child)
    _exited_cleanly(child, "a refresh in flight on a black hole", tmp_path)
    assert said["in_flight"] is True  # the prefetch thread held the engine's lock: mid-fetch
    assert fake_imds.count() > held  # and IMDS had its request, never answered


def test_sigint_while_the_main_thread_refreshes_raises_keyboardinterrupt_and_frees_the_lock(
    fake_imds: FakeIMDS, tmp_path: Path
) -> None:
    child = _start(tmp_path, "interrupted", fake_imds.endpoint)
    try:
        assert _line(child)["ready"] is True
        fake_imds.latency = 0.9  # each answer held, under the client's 1 s timeout
        before = fake_imds.count()
        _tell(child)
        assert _line(child) == {"refreshing": True}
        deadline = time.monotonic() + 5
        while fake_imds.count() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake_imds.count() > before, "the refresh never reached IMDS"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        interrupted = _line(child)
        took = time.monotonic() - sent
        fake_imds.latency = 0.0
        _tell(child)
        after = _line(child)
        _, stderr = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    print(f"\nSIGINT to KeyboardInterrupt: {took:.3f} s; frames: {interrupted['frames']}")
    assert interrupted["interrupted"] is True
    assert took < 2.0
    assert interrupted["lock_held"] is False
    assert after == {
        "again": fake_imds.current_credentials.access_key_id,
        "lock_held": False,
        "done": True,
    }
    assert child.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert_nothing_left_loopback(tmp_path)


def test_imdscreds_credentials_as_a_credential_process_feeds_a_boto3_session(
    fake_imds: FakeIMDS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    config = tmp_path / "config"
    config.write_text(
        "[profile imds-process]\n"
        f"credential_process = {sys.executable} -m imdscreds credentials "
        "--format credential-process\n",
        encoding="utf-8",
    )
    # botocore runs the command with this process's environment: the guard goes with it.
    for name, value in stack_env(
        tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=fake_imds.endpoint
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    began = time.monotonic()
    session = boto3.Session(profile_name="imds-process", region_name="us-east-1")
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials()
    print(f"\ncredential_process through imdscreds: {time.monotonic() - began:.3f} s")
    served = fake_imds.current_credentials
    assert credentials.method == "custom-process"
    assert frozen.access_key == served.access_key_id
    assert frozen.secret_key == served.secret_access_key
    assert frozen.token == served.token
    assert fake_imds.count(method="PUT") >= 1  # IMDSv2: the command asked for a token
    assert_nothing_left_loopback(tmp_path)


def _steady(answer: dict[str, Any], label: str) -> None:
    start, mid, end = answer["start"], answer["mid"], answer["end"]
    print(
        f"\n{label}: RSS {start['rss_kb']} / {mid['rss_kb']} / {end['rss_kb']} kB, "
        f"threads {start['threads']} / {mid['threads']} / {end['threads']}, "
        f"fds {start['fds']} / {mid['fds']} / {end['fds']} (start / mid / end)"
    )
    assert start["threads"] == mid["threads"] == end["threads"], answer
    assert start["fds"] == mid["fds"] == end["fds"], answer
    assert end["rss_kb"] - mid["rss_kb"] < 3 * 1024, answer


def test_a_thousand_sessions_made_and_dropped_leave_no_threads_fds_or_memory(
    tmp_path: Path,
) -> None:
    done = run_python(tmp_path, [APP, "churn"], timeout=40)
    assert done.returncode == 0, done.stderr
    answer = _answer(done.stdout)
    assert answer["made"] == 1000
    assert answer["keys"] == 1
    _steady(answer, "1,000 sessions made and dropped")
    assert_nothing_left_loopback(tmp_path)


def test_two_thousand_rotations_leave_no_threads_fds_or_memory(tmp_path: Path) -> None:
    done = run_python(tmp_path, [APP, "rotations"], timeout=40)
    assert done.returncode == 0, done.stderr
    answer = _answer(done.stdout)
    assert answer["rotations"] == 2000
    # The engine refreshes 300 s before a set's end (1,200 s life, a new set every 600 s): every
    # other set at least, and never the same one twice in a row unseen.
    assert answer["keys"] >= 1000, answer
    _steady(answer, "2,000 rotations")
    assert_nothing_left_loopback(tmp_path)


def test_thirty_two_threads_read_through_rotations_in_this_interpreter(tmp_path: Path) -> None:
    done = run_python(tmp_path, [APP, "threads"], timeout=40)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    answer = _answer(done.stdout)
    print(f"\n32 threads on Python {answer['python']} (GIL {answer['gil']}): {answer}")
    assert answer["errors"] == []
    assert answer["expired"] == 0
    assert answer["alive"] == 0
    assert answer["reads"] > 0
    # One credentials GET per set the engine took (the first fetch included): single flight.
    assert answer["gets"] == answer["seen"], answer
    assert answer["seen"] >= answer["rotations"] // 2, answer
    assert_nothing_left_loopback(tmp_path)
