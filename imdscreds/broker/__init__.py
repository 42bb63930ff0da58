"""``imdscreds serve`` / ``imdscreds exec``: one refresh engine for the whole host, on loopback.

:class:`Broker` serves the engine's credentials in the container-credentials format that every AWS
SDK reads (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``);
:class:`TokenFile` is the private file that holds what requests must present.
"""

from __future__ import annotations

from imdscreds.broker.server import BROKER_POLICY, Broker, served_expiration
from imdscreds.broker.token import TokenFile

__all__ = ["BROKER_POLICY", "Broker", "TokenFile", "served_expiration"]
