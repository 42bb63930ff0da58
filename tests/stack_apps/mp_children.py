"""Work for the multiprocessing tests' children: read the credentials of a botocore session.

A forked child inherits ``SESSION`` as the parent left it (a fetch in flight); a spawned or
forkserver child imports this module afresh and builds its own session. The IMDS endpoint and the
guard's report file come with each task, not the environment: a forkserver keeps the environment
it was started with, which may be an earlier test's.
"""

from __future__ import annotations

import os
from typing import Any

import botocore.session

import imdscreds

from . import stack_guard

SESSION: Any = None
_ARMED: set[int] = set()


def child_key(task: tuple[str, str]) -> tuple[int, str]:
    endpoint, report = task
    if os.getpid() not in _ARMED:
        _ARMED.add(os.getpid())
        os.environ["IMDSCREDS_STACK_GUARD"] = report
        stack_guard.arm()
    if globals()["SESSION"] is None:
        os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = endpoint
        fresh = botocore.session.Session()
        imdscreds.install(fresh)
        globals()["SESSION"] = fresh
    frozen = globals()["SESSION"].get_credentials().get_frozen_credentials()
    return os.getpid(), frozen.access_key
