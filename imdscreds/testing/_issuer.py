"""Credential sets for ``FakeIMDS``: issued on a rotation schedule, derived from a per-fake salt."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from imdscreds.credentials import RoleCredentials
from imdscreds.testing._documents import derive_credentials

__all__ = ["CredentialIssuer", "IssuedSet", "Terms"]


@dataclass(frozen=True)
class Terms:
    """The fake's settings that shape the next set; read at the moment a set is issued."""

    rotation: float
    validity: float
    role_name: str
    account_id: str


@dataclass(frozen=True)
class IssuedSet:
    """One set of credentials as the fake issued it."""

    access_key_id: str
    secret_access_key: str
    token: str
    issued_at: datetime
    expiration: datetime
    role_name: str
    account_id: str

    def as_role_credentials(
        self, *, expiration: datetime | None = None, account_id: str | None
    ) -> RoleCredentials:
        """The set as a client parses it back (IMDS's timestamps have whole seconds)."""
        return RoleCredentials(
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            token=self.token,
            expiration=(expiration or self.expiration).replace(microsecond=0),
            role_name=self.role_name,
            last_updated=self.issued_at.replace(microsecond=0),
            account_id=account_id,
        )


class CredentialIssuer:
    """Set n is issued ``rotation`` seconds after set n-1; the newest issued set is the one served.

    Sets are issued lazily, when asked for at a later time, so a clock that jumps a day ahead
    finds every set of that day issued. Not thread-safe: ``FakeIMDS`` calls it under its lock.
    """

    def __init__(self, first_at: datetime, terms: Terms) -> None:
        self._salt = secrets.token_bytes(16)
        self._sets: list[IssuedSet] = []
        self._next_index = 0
        self._next_due: datetime | None = None  # None while a pinned set is served
        self.issue(first_at, terms)

    @property
    def sets(self) -> list[IssuedSet]:
        """Every set issued so far, oldest first (a copy)."""
        return list(self._sets)

    def current(self, now: datetime, terms: Terms) -> IssuedSet:
        """The set served at ``now``, issuing any that came due since the last call."""
        while self._next_due is not None and self._next_due <= now:
            self.issue(self._next_due, terms)
        return self._sets[-1]

    def issue(self, at: datetime, terms: Terms) -> None:
        """Issue the next generated set at ``at``; rotation continues from there."""
        index = self._next_index
        self._next_index += 1
        access_key_id, secret_access_key, token = derive_credentials(self._salt, index)
        self._sets.append(
            IssuedSet(
                access_key_id=access_key_id,
                secret_access_key=secret_access_key,
                token=token,
                issued_at=at,
                expiration=at + timedelta(seconds=terms.validity),
                role_name=terms.role_name,
                account_id=terms.account_id,
            )
        )
        self._next_due = at + timedelta(seconds=terms.rotation)

    def pin(self, fixed: IssuedSet) -> None:
        """Serve ``fixed`` from now on, with rotation paused until the next ``issue``."""
        self._sets.append(fixed)
        self._next_due = None
