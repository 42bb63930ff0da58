"""imdscreds: EC2 instance-role credentials, fetched with IMDSv2, refreshed ahead of expiry, diagnosed.

The names below are the public API. Each is imported on first use (PEP 562), so ``import
imdscreds`` costs almost nothing and an offline command (``imdscreds trust explain``) does not pay
for requests, urllib3 or botocore; ``imdscreds.IMDSClient`` imports them when it is first named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imdscreds._version import __version__

if TYPE_CHECKING:
    from imdscreds.config import IMDSConfig
    from imdscreds.credentials import (
        RoleCredentials,
        RoleCredentialsFetcher,
        fetch_role_credentials,
    )
    from imdscreds.errors import IMDSCredsError
    from imdscreds.imds import IMDSClient
    from imdscreds.policy import RefreshPolicy
    from imdscreds.provider import IMDSCredentialProvider, boto3_session, install
    from imdscreds.refresh import RefreshingCredentials

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

# public name -> the module that defines it
_LAZY = {
    "IMDSClient": "imdscreds.imds",
    "IMDSConfig": "imdscreds.config",
    "IMDSCredentialProvider": "imdscreds.provider",
    "IMDSCredsError": "imdscreds.errors",
    "RefreshPolicy": "imdscreds.policy",
    "RefreshingCredentials": "imdscreds.refresh",
    "RoleCredentials": "imdscreds.credentials",
    "RoleCredentialsFetcher": "imdscreds.credentials",
    "boto3_session": "imdscreds.provider",
    "fetch_role_credentials": "imdscreds.credentials",
    "install": "imdscreds.provider",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imdscreds' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
