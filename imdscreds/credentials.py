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
from imdscreds.config import ROLE_NAME_VALID, IMDSConfig, role_name_problem
from imdscreds.errors import (
    ConfigError,
    CredentialsError,
    IMDSCodeError,
    IMDSNotFoundError,
    MalformedResponseError,
    NoInstanceProfileError,
    RoleNotFoundError,
    TrustPolicyError,
)
from imdscreds.imds import IMDSClient, IMDSResponse
from imdscreds.untrusted import (
    EARLIEST,
    LATEST,
    QUOTE_LIMIT,
    is_header_safe,
    is_plausible_instant,
    printable,
    quote,
)

__all__ = [
    "RoleCredentials",
    "RoleCredentialsFetcher",
    "fetch_role_credentials",
    "format_timestamp",
    "parse_credentials",
    "parse_document",
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

# ASCII digits only (\d takes any script's), a real UTC offset, and nothing after: fullmatch, since
# $ would also match before a trailing newline.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_REQUIRED = ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")
# Sent back to AWS in headers (the token as is, the key id inside Authorization) or used to sign.
_SENT_AS_HEADERS = ("AccessKeyId", "SecretAccessKey", "Token")
# IMDS's messages are a sentence or two; more than this is not IMDS talking.
MESSAGE_LIMIT = 500
_CODE_HINTS = {
    "InstanceProfileNotFound": (
        "The instance profile attached to this instance was deleted or replaced: associate a "
        "current one (`aws ec2 replace-iam-instance-profile-association`; Terraform: the instance's "
        "iam_instance_profile) and run `imdscreds doctor`."
    ),
}


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys: {"Code":"Failure","Code":"Success"} would pass.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


def parse_document(text: str, what: str) -> dict[str, Any]:
    """An IMDS JSON document (credentials, iam/info, the identity document) as a dict, strictly.

    ``what`` names it in errors ("The credentials document for role 'r'"). Anything but one JSON
    object with each key once is a MalformedResponseError: no RecursionError from a document nested
    10,000 deep, no silent choice between two values of one key.
    """
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise MalformedResponseError(
            f"{what} has the key {quote(exc.args[0])} more than once."
        ) from None
    except RecursionError:
        raise MalformedResponseError(f"{what} is not JSON (nested too deep).") from None
    except ValueError as exc:
        # The decoder's message names a position, never the content.
        raise MalformedResponseError(f"{what} is not JSON ({exc}).") from None
    if not isinstance(document, dict):
        raise MalformedResponseError(f"{what} is not a JSON object.")
    return document


def parse_timestamp(value: object, field_name: str) -> datetime:
    """An IMDS timestamp (``2026-01-01T00:00:00Z``, fractions allowed) as an aware UTC datetime."""
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise MalformedResponseError(
            f"The credentials document's {field_name} is not an ISO 8601 timestamp: {quote(value)}."
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = timedelta(0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        instant = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=timezone(offset),
        ).astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise MalformedResponseError(
            f"The credentials document's {field_name} is not a valid date: {quote(value)} ({exc})."
        ) from None
    if not is_plausible_instant(instant):
        raise MalformedResponseError(
            f"The credentials document's {field_name} is not a date IMDS would write: "
            f"{quote(value)} (outside {EARLIEST.year} to {LATEST.year - 1})."
        )
    return instant


def parse_credentials(body: str, role_name: str) -> RoleCredentials:
    """Parse IMDS's credentials document strictly; a Code other than Success raises with IMDS's text."""
    doc = parse_document(body, f"The credentials document for role {role_name!r}")
    code = doc.get("Code")
    if code != "Success":
        message = doc.get("Message")
        imds_message = printable(message, limit=MESSAGE_LIMIT) if isinstance(message, str) else None
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
            f"IMDS could not issue credentials for role {role_name!r} "
            f"({printable(code, limit=QUOTE_LIMIT)}){said}",
            code=code,
            imds_message=imds_message,
            hint=_CODE_HINTS.get(code, "Run `imdscreds doctor` for the cause and the fix."),
        )
    missing = [name for name in _REQUIRED if not isinstance(doc.get(name), str) or not doc[name]]
    if missing:
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} lacks {', '.join(missing)}."
        )
    # Never quoted: a key or token that a client would reject (or splits a header with CR/LF)
    # would otherwise end up in botocore's "Invalid header value" error, secret and all.
    unsendable = [name for name in _SENT_AS_HEADERS if not is_header_safe(doc[name])]
    if unsendable:
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} has a {' and a '.join(unsendable)} "
            "that cannot be sent in an HTTP header (only visible ASCII can)."
        )
    access_key_id = doc["AccessKeyId"]
    if not access_key_id.isalnum():
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} has an invalid AccessKeyId."
        )
    last_updated = doc.get("LastUpdated")
    account_id = doc.get("AccountId")
    if account_id is not None and not (
        isinstance(account_id, str) and (not account_id or _ACCOUNT_ID.fullmatch(account_id))
    ):
        raise MalformedResponseError(
            f"The credentials document for role {role_name!r} has an AccountId that is not 12 "
            f"digits: {quote(account_id)}."
        )
    return RoleCredentials(
        access_key_id=access_key_id,
        secret_access_key=doc["SecretAccessKey"],
        token=doc["Token"],
        expiration=parse_timestamp(doc["Expiration"], "Expiration"),
        role_name=role_name,
        last_updated=None if last_updated is None else parse_timestamp(last_updated, "LastUpdated"),
        account_id=account_id or None,
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
        if role_name is not None:
            problem = role_name_problem(role_name)
            if problem is not None:
                raise ConfigError(
                    f"The role_name argument {quote(role_name)} {problem}; {ROLE_NAME_VALID}.",
                    setting="role_name",
                    source="argument",
                    hint="Pass the role name that IMDS lists, or None to discover it.",
                )
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
        problem = role_name_problem(role)
        if problem is not None:
            # Never requested: the credentials path is that path plus exactly this one name.
            raise MalformedResponseError(
                f"IMDS listed a role name that {problem} ({len(role)} characters, not shown: "
                f"a misrouted answer may hold a secret); {ROLE_NAME_VALID}."
            )
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
