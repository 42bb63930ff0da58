"""A WSGI app for the gunicorn tests: botocore with imdscreds installed at import.

With ``--preload`` gunicorn imports this in the master, which fetches the first credentials and
then forks its workers; without it each worker imports it after the fork. ``GET /`` answers the
worker's pid and the access key id the engine serves now; ``GET /sts`` signs an STS
GetCallerIdentity with those credentials (moto on loopback) and answers the caller's ARN too.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import botocore.session

import imdscreds
from imdscreds import RefreshPolicy

POLICY = RefreshPolicy(
    advisory_window=float(os.environ.get("STACK_ADVISORY_WINDOW", "2.5")),
    mandatory_window=0.5,
    advisory_jitter=0.0,
    retry_backoff=(1.0, 1.0),
    first_fetch_backoff=(0.05, 0.5),
)

session = botocore.session.Session()
imdscreds.install(session, policy=POLICY)
session.get_credentials()  # in the master under --preload: the workers inherit a live engine

_clients: dict[int, Any] = {}
_clients_lock = threading.Lock()


def _sts() -> Any:
    pid = os.getpid()
    with _clients_lock:
        if pid not in _clients:
            _clients.clear()
            _clients[pid] = session.create_client("sts", region_name="us-east-1")
        return _clients[pid]


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    frozen = session.get_credentials().get_frozen_credentials()
    answer: dict[str, Any] = {"pid": os.getpid(), "key": frozen.access_key}
    if environ.get("PATH_INFO") == "/sts":
        identity = _sts().get_caller_identity()
        answer["arn"] = identity["Arn"]
        # The signer read the credentials again: a rotation may fall between the two reads.
        answer["key_after"] = session.get_credentials().get_frozen_credentials().access_key
    body = json.dumps(answer).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
