"""What the stack apps share: a policy that refreshes within seconds, and the JSON they print."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from imdscreds import RefreshPolicy

# For a FakeIMDS(rotation=2, validity=5): the refresh comes 2.5 s into a set's life, after the next.
POLICY = RefreshPolicy(
    advisory_window=2.5,
    mandatory_window=0.5,
    advisory_jitter=0.0,
    retry_backoff=(1.0, 1.0),
    first_fetch_backoff=(0.05, 0.5),
)
SECONDS = float(os.environ.get("STACK_SECONDS", "5"))


def report(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()
