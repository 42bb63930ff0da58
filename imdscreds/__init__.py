"""imdscreds: EC2 instance-role credentials, fetched with IMDSv2, refreshed ahead of expiry, diagnosed.

The names below are the public API. The botocore glue (``install``, ``boto3_session``,
``IMDSCredentialProvider``) is imported on first use, so ``import imdscreds`` and the CLI's
``credentials`` command do not pay for importing botocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imdscreds._version import __version__
from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentials, RoleCredentialsFetcher, fetch_role_credentials
from imdscreds.errors import IMDSCredsError
from imdscreds.imds import IMDSClient
from imdscreds.policy import RefreshPolicy
from imdscreds.refresh import RefreshingCredentials

if TYPE_CHECKING:
    from imdscreds.provider import IMDSCredentialProvider, boto3_session, install

__all__ = [
    "IMDSClient",
    "IMDSConfig",
    "IMDSCredentialProvider",
    "IMDSCredsError",
    "RefreshPolicy",
    "RefreshingCredentials",
    "RoleCredentials",
    "RoleCredentialsFetcher",
    "__version__",
    "boto3_session",
    "fetch_role_credentials",
    "install",
]

_LAZY = frozenset({"IMDSCredentialProvider", "boto3_session", "install"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from imdscreds import provider

        return getattr(provider, name)
    raise AttributeError(f"module 'imdscreds' has no attribute {name!r}")
