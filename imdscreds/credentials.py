"""Role credentials: the model, strict parsing of IMDS's document, and role discovery.

Role discovery follows the rule the AWS SDKs share: start not knowing whether IMDS has the extended
endpoint (``security-credentials-extended``, which adds ``AccountId``) and try it; a 404 while still
not knowing switches to the legacy endpoint for good; any other status never falls back. The role
name is cached for the client's life, and a 404 on the cached name means the instance's role changed:
forget it, rediscover, retry, a bounded number of times.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from imdscreds import _forksafe
from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.config import IMDSConfig
from imdscreds.errors import (
    CredentialsError,
    IMDSCodeError,
    IMDSNotFoundError,
    MalformedResponseError,
    NoInstanceProfileError,
    RoleNotFoundError,
    TrustPolicyError,
)
from imdscreds.imds import IMDSClient, IMDSResponse

__all__ = [
    "RoleCredentials",
    "RoleCredentialsFetcher",
    "fetch_role_credentials",
    "format_timestamp",
    "parse_credentials",
    "parse_timestamp",
]


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
    server_time: datetime | None = field(default=None, compare=False)
    """The time by the clock of the server that sent these credentials (its HTTP ``Date``), if
    it said: expiry is judged against it, since a local clock that is wrong cannot move it."""

    def to_credential_process(self) -> dict[str, Any]:
        """The AWS CLI's ``credential_process`` document (Version 1)."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.token,
            "Expiration": format_timestamp(self.expiration),
        }


def format_timestamp(instant: datetime) -> str:
    """An aware datetime as IMDS writes timestamps: ``2026-01-01T00:00:00Z`` (UTC, whole seconds)."""
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- parsing --------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)
_REQUIRED = ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")
_CODE_HINTS = {
    "InstanceProfileNotFound": (
        "The instance profile attached to this instance was deleted or replaced: associate a "
        "current one (`aws ec2 replace-iam-instance-profile-association`; Terraform: the instance's "
        "iam_instance_profile) and run `imdscreds doctor`."
    ),
}


def parse_timestamp(value: object, field_name: str) -> datetime:
    """An IMDS timestamp (``2026-01-01T00:00:00Z``, fractions allowed) as an aware UTC datetime."""
    match = _TIMESTAMP.match(value) if isinstance(value, str) else None
    if match is None:
        raise MalformedResponseError(
            f"The credentials document's {field_name} is not an ISO 8601 UTC timestamp: {value!r}."
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        instant = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        raise MalformedResponseError(
            f"The credentials document's {field_name} is not a valid date: {value!r} ({exc})."
        ) from None
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        instant -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return instant


def parse_credentials(body: str, role_name: str) -> RoleCredentials:
    """Parse IMDS's credentials document strictly; a Code other than Success raises with IMDS's text."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        # The decoder's message names a position, never the content.
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} is not JSON ({exc})."
        ) from None
    if not isinstance(doc, dict):
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} is not a JSON object."
        )
    code = doc.get("Code")
    if code != "Success":
        message = doc.get("Message")
        imds_message = message if isinstance(message, str) else None
        said = f": {imds_message}" if imds_message else ""
        if code == "AssumeRoleUnauthorizedAccess":
            raise TrustPolicyError(
                f"EC2 cannot assume the role {role_name!r} (AssumeRoleUnauthorizedAccess){said}",
                code=code,
                imds_message=imds_message,
            )
        if not isinstance(code, str):
            raise MalformedResponseError(
                f"The credentials document for role {role_name!r} has no Code."
            )
        raise IMDSCodeError(
            f"IMDS could not issue credentials for role {role_name!r} ({code}){said}",
            code=code,
            imds_message=imds_message,
            hint=_CODE_HINTS.get(code, "Run `imdscreds doctor` for the cause and the fix."),
        )
    missing = [name for name in _REQUIRED if not isinstance(doc.get(name), str) or not doc[name]]
    if missing:
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} lacks {', '.join(missing)}."
        )
    access_key_id = doc["AccessKeyId"]
    if not access_key_id.isascii() or not access_key_id.isalnum():
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} has an invalid AccessKeyId."
        )
    last_updated = doc.get("LastUpdated")
    account_id = doc.get("AccountId")
    return RoleCredentials(
        access_key_id=access_key_id,
        secret_access_key=doc["SecretAccessKey"],
        token=doc["Token"],
        expiration=parse_timestamp(doc["Expiration"], "Expiration"),
        role_name=role_name,
        last_updated=None if last_updated is None else parse_timestamp(last_updated, "LastUpdated"),
        account_id=account_id if isinstance(account_id, str) and account_id else None,
    )


# -- role discovery -------------------------------------------------------------------------------

EXTENDED_PATH = "/latest/meta-data/iam/security-credentials-extended/"
LEGACY_PATH = "/latest/meta-data/iam/security-credentials/"


class RoleCredentialsFetcher:
    """Fetches the instance role's credentials: role discovery, the extended/legacy rule, no cache.

    One fetch is one GET in steady state; the refresh engine above decides when to fetch.
    """

    def __init__(
        self, client: IMDSClient, *, role_name: str | None = None, max_rediscoveries: int = 3
    ) -> None:
        self.client = client
        configured = client.config.instance_profile_name if role_name is None else role_name
        self._configured = configured
        self._role: str | None = configured
        self._api: str = "unknown"  # "unknown" | "extended" | "legacy"
        self._max_rediscoveries = max_rediscoveries
        self._lock = threading.Lock()
        _forksafe.track(self)

    def __repr__(self) -> str:
        return f"RoleCredentialsFetcher(role={self._role!r}, api={self._api!r})"

    @property
    def role_name(self) -> str | None:
        """The role name in use (configured or discovered), or None before the first fetch."""
        return self._role

    @property
    def api(self) -> str:
        """Which credentials endpoint IMDS has: ``unknown``, ``extended`` or ``legacy``."""
        return self._api

    def fetch(self) -> RoleCredentials:
        """One uncached fetch of the role's credentials, within ``config.total_timeout``."""
        with self._lock:
            deadline = self.client.clock.monotonic() + self.client.config.total_timeout
            for _ in range(self._max_rediscoveries + 1):
                role = self._role if self._role is not None else self._discover(deadline)
                response = self._credentials_document(role, deadline)
                if response is not None:
                    credentials = parse_credentials(response.text, role)
                    return dataclasses.replace(credentials, server_time=response.date)
                # 404 on a discovered name: the instance's role was changed. Rediscover.
                self._role = None
            raise CredentialsError(
                f"The instance's role changed {self._max_rediscoveries + 1} times during one fetch.",
                hint="Something is replacing the instance profile repeatedly; try again later.",
            )

    def _discover(self, deadline: float) -> str:
        if self._api != "legacy":
            try:
                listing = self.client.get(EXTENDED_PATH, deadline=deadline).text
            except IMDSNotFoundError:
                if self._api == "extended":
                    raise self._no_profile() from None
                self._api = "legacy"
            else:
                self._api = "extended"
                return self._remember(listing)
        try:
            listing = self.client.get(LEGACY_PATH, deadline=deadline).text
        except IMDSNotFoundError:
            raise self._no_profile() from None
        return self._remember(listing)

    def _remember(self, listing: str) -> str:
        role = listing.strip().splitlines()[0].strip() if listing.strip() else ""
        if not role:
            raise self._no_profile()
        if any(char.isspace() or char == "/" for char in role):
            raise MalformedResponseError(f"IMDS listed an invalid role name: {role!r}.")
        self._role = role
        return role

    def _credentials_document(self, role: str, deadline: float) -> IMDSResponse | None:
        """The document; None when a discovered role has vanished (rediscover)."""
        if self._api != "legacy":
            try:
                response = self.client.get(EXTENDED_PATH + role, deadline=deadline)
            except IMDSNotFoundError:
                if self._api == "unknown":
                    # Only a configured name gets here before the API is known: try legacy.
                    self._api = "legacy"
                elif self._configured is None:
                    return None
                else:
                    raise self._role_not_found(role) from None
            else:
                self._api = "extended"
                return response
        try:
            return self.client.get(LEGACY_PATH + role, deadline=deadline)
        except IMDSNotFoundError:
            if self._configured is None:
                return None
            raise self._role_not_found(role) from None

    def _after_fork_in_child(self) -> None:
        # A parent thread may have been mid-fetch, holding the lock, when another one forked.
        self._lock = threading.Lock()

    def _no_profile(self) -> NoInstanceProfileError:
        return NoInstanceProfileError(
            "No instance profile is attached to this instance: IMDS lists no role "
            f"({'security-credentials' if self._api == 'legacy' else 'both role paths'} 404)."
        )

    def _role_not_found(self, role: str) -> RoleNotFoundError:
        return RoleNotFoundError(
            f"IMDS has no credentials for the configured role {role!r} "
            f"({self.client.config.source_of('instance_profile_name')}) on either path (404).",
            role_name=role,
            hint="Set AWS_EC2_INSTANCE_PROFILE_NAME (or ec2_instance_profile_name) to the role "
            f"that {LEGACY_PATH} lists, or unset it to discover the role.",
        )


def fetch_role_credentials(
    config: IMDSConfig | None = None, *, clock: Clock = SYSTEM_CLOCK
) -> RoleCredentials:
    """Fetch the instance role's credentials once (no refresh, no cache)."""
    with IMDSClient(config, clock=clock) as client:
        return RoleCredentialsFetcher(client).fetch()
