"""A gevent process: everything monkey-patched first, then botocore with imdscreds installed.

Fifty greenlets read the credentials for ``STACK_SECONDS`` while the FakeIMDS rotates them; the
blocking IMDS requests of a refresh go through gevent's sockets, so the others keep running.
"""

from gevent import monkey

monkey.patch_all()

import stack_guard  # noqa: E402  (the guard wraps gevent's socket class now)

stack_guard.arm()

import time  # noqa: E402

import botocore.session  # noqa: E402
import gevent  # noqa: E402
from rotations import POLICY, SECONDS, report  # noqa: E402

import imdscreds  # noqa: E402

session = botocore.session.Session()
imdscreds.install(session, policy=POLICY)
credentials = session.get_credentials()
keys: set[str] = set()
errors: list[str] = []
reads = [0]
end = time.monotonic() + SECONDS


def reader() -> None:
    while time.monotonic() < end:
        try:
            keys.add(credentials.get_frozen_credentials().access_key)
            reads[0] += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        gevent.sleep(0.005)


done = gevent.joinall([gevent.spawn(reader) for _ in range(50)], timeout=SECONDS + 20)
report(
    keys=sorted(keys),
    errors=errors[:5],
    reads=reads[0],
    finished=len(done),
    patched=monkey.is_module_patched("socket"),
)
