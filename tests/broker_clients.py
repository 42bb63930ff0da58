"""Plain botocore clients for the broker tests, run as processes (imdscreds is never imported).

``python broker_clients.py once``: load credentials through botocore's own chain, print one JSON
line (method, access key id, or the error).
``python broker_clients.py launch N``: start N ``once`` processes at the same moment, wait for
all, print their lines.
"""

from __future__ import annotations

import json
import subprocess
import sys


def once() -> None:
    import botocore.session

    try:
        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            print(json.dumps({"error": "no credentials"}))
            return
        frozen = credentials.get_frozen_credentials()
        print(json.dumps({"method": credentials.method, "access_key": frozen.access_key}))
    except Exception as exc:  # the test reads what went wrong, it must not be a traceback
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    assert "imdscreds" not in sys.modules


def launch(count: int) -> None:
    children = [
        subprocess.Popen([sys.executable, __file__, "once"], stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    for child in children:
        out, _ = child.communicate(timeout=120)
        sys.stdout.write(out)


if __name__ == "__main__":
    if sys.argv[1] == "once":
        once()
    else:
        launch(int(sys.argv[2]))
