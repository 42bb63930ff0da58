"""What the doctor reports: one ``Finding`` per check, in a fixed order, gathered in a ``Report``.

The ids and their order are a contract (scripts match on them, and the JSON output is versioned):
every report holds every id exactly once, ``skip`` with the reason when an earlier failure made the
check pointless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "CHECK_IDS",
    "FETCH_CHECKS",
    "JSON_VERSION",
    "STATUSES",
    "Finding",
    "Report",
    "Status",
    "failed",
    "passed",
    "skipped",
    "warned",
]

Status = Literal["pass", "warn", "fail", "skip"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail", "skip")
JSON_VERSION = 1

CHECK_IDS: tuple[str, ...] = (
    # the process's environment and SDK settings
    "sdk-disabled",
    "endpoint-config",
    "proxy-env",
    "credential-shadowing",
    # the metadata service
    "imds-reachable",
    "imds-disabled",
    "hop-limit",
    "imds-v1-enabled",
    "instance-identity",
    # the instance profile and its role, as IMDS sees them
    "no-instance-profile",
    "instance-profile-not-found",
    "profile-without-role",
    "trust-policy",
    "credentials-expiry",
    "clock-skew",
    # AWS itself
    "sts-identity",
    "no-attached-policies",
    "policies-unreadable",
)

# The checks whose subject is the fetch of the role's credentials: one of them explains its failure.
FETCH_CHECKS: tuple[str, ...] = (
    "imds-reachable",
    "imds-disabled",
    "hop-limit",
    "no-instance-profile",
    "instance-profile-not-found",
    "profile-without-role",
    "trust-policy",
    "credentials-expiry",
)


@dataclass(frozen=True)
class Finding:
    """The outcome of one check. ``fix`` says what to change (console, AWS CLI, Terraform)."""

    id: str
    status: Status
    summary: str
    detail: str | None = None
    fix: str | None = None

    def __post_init__(self) -> None:
        if self.id not in CHECK_IDS:
            raise ValueError(f"unknown check id {self.id!r}; the ids are {', '.join(CHECK_IDS)}")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; valid: {', '.join(STATUSES)}")

    def to_json(self) -> dict[str, Any]:
        """The finding as the ``--json`` output carries it."""
        return {
            "id": self.id,
            "status": self.status,
            "summary": self.summary,
            "detail": self.detail,
            "fix": self.fix,
        }


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Report:
    """Every finding in ``CHECK_IDS`` order, what was learnt about the instance and role, the time."""

    findings: tuple[Finding, ...]
    duration_s: float
    instance: Mapping[str, Any] = field(default_factory=dict)
    role: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = tuple(finding.id for finding in self.findings)
        if ids != CHECK_IDS:
            raise ValueError(f"a report holds every check once, in order; got {ids}")
        object.__setattr__(self, "instance", _frozen(self.instance))
        object.__setattr__(self, "role", _frozen(self.role))

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skips are fine)."""
        return not self.failed

    @property
    def failed(self) -> tuple[Finding, ...]:
        """The failed findings, in check order."""
        return tuple(finding for finding in self.findings if finding.status == "fail")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings with a warning, in check order."""
        return tuple(finding for finding in self.findings if finding.status == "warn")

    def __getitem__(self, check_id: str) -> Finding:
        for finding in self.findings:
            if finding.id == check_id:
                return finding
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document, schema version ``JSON_VERSION`` (see the README)."""
        return {
            "version": JSON_VERSION,
            "ok": self.ok,
            "duration_s": round(self.duration_s, 3),
            "instance": dict(self.instance),
            "role": dict(self.role),
            "findings": [finding.to_json() for finding in self.findings],
        }


def passed(check_id: str, summary: str, detail: str | None = None) -> Finding:
    """A check that found nothing wrong."""
    return Finding(check_id, "pass", summary, detail)


def warned(
    check_id: str, summary: str, detail: str | None = None, fix: str | None = None
) -> Finding:
    """Works, but is worth changing."""
    return Finding(check_id, "warn", summary, detail, fix)


def failed(
    check_id: str, summary: str, detail: str | None = None, fix: str | None = None
) -> Finding:
    """Broken: the fix says what to change."""
    return Finding(check_id, "fail", summary, detail, fix)


def skipped(check_id: str, reason: str) -> Finding:
    """Not checked, because an earlier result makes it pointless; the summary says which."""
    return Finding(check_id, "skip", f"skipped: {reason}")
