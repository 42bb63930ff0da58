"""imdscreds: EC2 instance-role credentials, fetched with IMDSv2, refreshed ahead of expiry, diagnosed."""

from __future__ import annotations

from imdscreds._version import __version__
from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentials, RoleCredentialsFetcher, fetch_role_credentials
from imdscreds.errors import IMDSCredsError
from imdscreds.imds import IMDSClient

__all__ = [
    "IMDSClient",
    "IMDSConfig",
    "IMDSCredsError",
    "RoleCredentials",
    "RoleCredentialsFetcher",
    "__version__",
    "fetch_role_credentials",
]
