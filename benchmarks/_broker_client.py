"""One process of a host: import botocore, load credentials through its own chain once, print the
access key id (or ``error: ...``). imdscreds is not imported: this is what any SDK process does."""

from __future__ import annotations

import botocore.session

try:
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        print("error: no credentials")
    else:
        print(credentials.get_frozen_credentials().access_key)
except Exception as exc:  # noqa: BLE001 - the driver counts errors by this line
    print(f"error: {type(exc).__name__}")
