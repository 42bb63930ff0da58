"""The suite's network guard for a process a stack test starts, for the whole life of the process.

``arm()`` enters ``block_non_loopback()`` and never leaves it. A blocked attempt is appended at once
to the file named by ``IMDSCREDS_STACK_GUARD`` (a gunicorn worker ends with ``os._exit``, so an
``atexit`` report would be lost); the test fails when that file is not empty. Call ``arm()`` again
after anything replaces the socket module's classes (``gevent.monkey.patch_all()``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

# The guard module is loaded from its file: importing ``imdscreds.testing`` would import requests
# and urllib3 before a gevent process patches the socket and ssl modules.
_GUARD_FILE = Path(__file__).resolve().parents[2] / "imdscreds" / "testing" / "guard.py"
_spec = importlib.util.spec_from_file_location("_imdscreds_stack_guard", _GUARD_FILE)
assert _spec is not None
assert _spec.loader is not None
_guard_module = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _guard_module
_spec.loader.exec_module(_guard_module)
block_non_loopback = _guard_module.block_non_loopback

_HELD: list[Any] = []


def arm() -> Any:
    report = os.environ.get("IMDSCREDS_STACK_GUARD")
    if not report:
        return None
    context = block_non_loopback()
    guard = context.__enter__()
    _HELD.append(context)
    block = guard._block

    def record(operation: str, address: str) -> Any:
        with open(report, "a", encoding="utf-8") as out:
            out.write(f"pid {os.getpid()}: {operation} {address}\n")
        return block(operation, address)

    guard._block = record  # type: ignore[method-assign]
    return guard
