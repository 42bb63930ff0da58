"""Role credentials: the model, strict parsing of IMDS's document, and role discovery.

Role discovery follows the rule the AWS SDKs share: start not knowing whether IMDS has the extended
endpoint (``security-credentials-extended``, which adds ``AccountId``) and try it; a 404 while still
not knowing switches to the legacy endpoint for good; any other status never falls back. The role
name is cached for the client's life, and a 404 on the cached name means the instance's role changed:
forget it, rediscover, retry, a bounded number of times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["RoleCredentials"]


@dataclass(frozen=True)
class RoleCredentials:
    """One set of instance-role credentials as IMDS issued them; secrets stay out of ``repr``."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    token: str = field(repr=False)
    expiration: datetime
    role_name: str
    last_updated: datetime | None = None
    account_id: str | None = None

    def to_credential_process(self) -> dict[str, Any]:
        """The AWS CLI's ``credential_process`` document (Version 1)."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.token,
            "Expiration": _iso(self.expiration),
        }


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
