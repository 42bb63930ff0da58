"""The IMDS rules ``FakeIMDS`` plays: one request and a view of the fake's state in, a ``Reply`` out.

Nothing here touches a socket or a lock; ``FakeIMDS`` calls ``respond`` under its lock with a
``View`` of its settings taken for that request.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message

from imdscreds.testing import _documents as documents
from imdscreds.testing import _metadata as metadata
from imdscreds.testing._issuer import IssuedSet
from imdscreds.testing._server import Reply

__all__ = [
    "TOKEN_HEADER",
    "TOKEN_PATH",
    "TOKEN_TTL_HEADER",
    "TokenStore",
    "View",
    "error",
    "respond",
    "served_account_id",
    "served_expiration",
]

# Paths and header names, not secrets.
TOKEN_PATH = "/latest/api/token"  # noqa: S105
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105
LEGACY_PATH = "/latest/meta-data/iam/security-credentials"
EXTENDED_PATH = "/latest/meta-data/iam/security-credentials-extended"
INFO_PATH = "/latest/meta-data/iam/info"
IDENTITY_PATH = "/latest/dynamic/instance-identity/document"
METADATA_PATH = "/latest/meta-data"

_TTL_PATTERN = re.compile(r"[0-9]+")
_NO_ROLE = frozenset({"no-profile", "profile-without-role"})
_PRUNE_AT = 1024


@dataclass(frozen=True)
class View:
    """The fake's settings as one request sees them."""

    scenario: str
    role_name: str
    account_id: str
    instance_id: str
    region: str
    extended: bool
    v1_allowed: bool
    max_token_ttl: int
    launched: datetime
    credentials: Callable[[], IssuedSet]  # the set served now; only some paths need it

    @property
    def extended_available(self) -> bool:
        return self.extended and self.scenario != "legacy-only"


class TokenStore:
    """Session tokens and when they expire, on the fake's monotonic clock."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def issue(self, ttl: int, now: float) -> str:
        if len(self._expiry) >= _PRUNE_AT:
            self._expiry = {t: end for t, end in self._expiry.items() if end > now}
        token = secrets.token_urlsafe(42)
        self._expiry[token] = now + ttl
        return token

    def valid(self, token: str, now: float) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and now < expiry


def served_expiration(issued: IssuedSet, scenario: str) -> datetime:
    """The Expiration a client is told; ``expired`` serves one already a minute in the past."""
    if scenario == "expired":
        return issued.issued_at - timedelta(minutes=1)
    return issued.expiration


def served_account_id(issued: IssuedSet, view: View, *, extended_path: bool) -> str | None:
    """``AccountId`` appears on the extended path only, and not in ``no-account-id``."""
    if extended_path and view.extended_available and view.scenario != "no-account-id":
        return issued.account_id
    return None


def error(status: int) -> Reply:
    """An error status with IMDS's XHTML page."""
    return Reply(status=status, body=documents.error_page(status), content_type="text/html")


def respond(
    method: str, path: str, headers: Message, *, view: View, tokens: TokenStore, now: float
) -> Reply:
    """Answer one request as IMDS would in ``view.scenario``; ``now`` is monotonic time."""
    scenario = view.scenario
    if scenario == "outage":
        return Reply(action="drop")
    if scenario == "blackhole":
        return Reply(action="hold")
    if scenario == "imds-disabled":
        return error(403)
    if scenario == "server-error":
        return error(500)
    if scenario == "throttled":
        return error(429)
    if path == TOKEN_PATH:
        return _token(headers, view, tokens, now) if method == "PUT" else error(405)
    if method not in ("GET", "HEAD"):
        return error(405)
    token = headers.get(TOKEN_HEADER)
    if token is None:
        if not view.v1_allowed or scenario == "v1-disabled":
            return error(401)
    elif not tokens.valid(token, now):
        return error(401)
    return _route(path, view)


def _token(headers: Message, view: View, tokens: TokenStore, now: float) -> Reply:
    # The answer to the PUT is what dies at a container's bridge when the hop limit is 1.
    if view.scenario == "hop-limit":
        return Reply(action="hold")
    # IMDS refuses a token request that came through a proxy, so that no proxy can hand a token
    # to whoever is behind it.
    if headers.get("X-Forwarded-For") is not None:
        return error(403)
    raw = (headers.get(TOKEN_TTL_HEADER) or "").strip()
    if not _TTL_PATTERN.fullmatch(raw) or not 1 <= int(raw) <= view.max_token_ttl:
        return error(400)
    ttl = int(raw)
    return Reply(body=tokens.issue(ttl, now).encode(), headers=((TOKEN_TTL_HEADER, str(ttl)),))


def _route(path: str, view: View) -> Reply:
    for base, extended_path in ((LEGACY_PATH, False), (EXTENDED_PATH, True)):
        if path != base and not path.startswith(base + "/"):
            continue
        if extended_path and not view.extended_available:
            return error(404)
        role = path[len(base) + 1 :]
        if not role:
            return error(404) if view.scenario in _NO_ROLE else _text(view.role_name)
        return _credentials(role, view, extended_path=extended_path)
    if path == INFO_PATH:
        return _info(view)
    if path == IDENTITY_PATH:
        return Reply(
            body=documents.identity_document(
                account_id=view.account_id,
                instance_id=view.instance_id,
                region=view.region,
                pending_time=view.launched,
            )
        )
    if path == METADATA_PATH or path.startswith(METADATA_PATH + "/"):
        return _metadata(path[len(METADATA_PATH) :], view)
    return error(404)


def _metadata(relative: str, view: View) -> Reply:
    tree = metadata.metadata_tree(
        instance_id=view.instance_id,
        region=view.region,
        with_iam=view.scenario != "no-profile",
    )
    node = metadata.lookup(tree, relative)
    if node is None:
        return error(404)
    return _text(metadata.listing(node) if isinstance(node, dict) else node)


def _credentials(role: str, view: View, *, extended_path: bool) -> Reply:
    if view.scenario in _NO_ROLE or role != view.role_name:
        return error(404)
    issued = view.credentials()
    if view.scenario == "trust-policy":
        return Reply(body=documents.trust_policy_document(role, issued.issued_at))
    if view.scenario == "profile-not-found":
        return Reply(
            body=documents.profile_not_found_document(
                view.account_id, view.role_name, issued.issued_at
            )
        )
    if view.scenario == "malformed":
        return Reply(body=b"{not json")
    body = documents.credentials_document(
        access_key_id=issued.access_key_id,
        secret_access_key=issued.secret_access_key,
        token=issued.token,
        last_updated=issued.issued_at,
        expiration=served_expiration(issued, view.scenario),
        account_id=served_account_id(issued, view, extended_path=extended_path),
    )
    return Reply(body=body)


def _info(view: View) -> Reply:
    if view.scenario == "no-profile":
        return error(404)
    last_updated = view.credentials().issued_at
    if view.scenario == "profile-without-role":
        message = "Instance Profile does not contain a role, or the role is invalid."
        return Reply(body=documents.code_document("InvalidInstanceProfile", message, last_updated))
    if view.scenario == "profile-not-found":
        return Reply(
            body=documents.profile_not_found_document(view.account_id, view.role_name, last_updated)
        )
    return Reply(body=documents.info_document(view.account_id, view.role_name, last_updated))


def _text(value: str) -> Reply:
    return Reply(body=value.encode())
