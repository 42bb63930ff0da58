"""The doctor's verdict on IMDS is the library's own fetch, not a reading of the probe's statuses.

The probe (``imds_probe``) says *why* something may be wrong: refused, hop limit, endpoint off,
IMDSv1. Whether the role's credentials can be had is the library's to say: ``Context`` fetches
them with ``RoleCredentialsFetcher`` over an ``IMDSClient`` with the same settings
``imdscreds credentials`` and the provider use. ``reconcile`` holds every IMDS finding to that
fetch, so that the two never disagree:

- the fetch failed and no check failed so far: the check that owns the fetch's error (by its
  type: a 403 is ``imds-disabled``, a 404 on the role list is ``no-instance-profile`` ...,
  anything IMDS itself would not answer is ``imds-reachable``) fails with the fetch's own message;
- the fetch failed and a check failed for it: that first failure quotes the fetch's message, so
  the doctor's explanation and the caller's error name the same cause;
- the fetch worked: a failure of the transport checks (seen by the probe alone, a passing
  fault) is a warning, since a caller would have got credentials.
"""

from __future__ import annotations

from imdscreds.doctor import fixes
from imdscreds.doctor.checks_role import profile_state
from imdscreds.doctor.context import Context, NotAsked, OutOfTime
from imdscreds.doctor.findings import FETCH_CHECKS, Finding, failed, warned
from imdscreds.errors import (
    CredentialsError,
    IMDSCredsError,
    IMDSDisabledError,
    IMDSHTTPError,
    IMDSUnreachableError,
    MalformedResponseError,
    TokenError,
    TrustPolicyError,
)

__all__ = ["FETCH_FAILS", "fetch_owner", "reconcile"]

# What the probe alone can fail: the wire, before any credentials are asked for.
_TRANSPORT_CHECKS = frozenset({"imds-reachable", "imds-disabled", "hop-limit"})
_PROFILE_OWNERS = {
    "none": "no-instance-profile",
    "not-found": "instance-profile-not-found",
    "no-role": "profile-without-role",
}
# The line a failing finding carries with the library's message: what `imdscreds credentials`,
# the provider and boto3 through it would report.
FETCH_FAILS = "A fetch of the role's credentials through these settings fails: "


def fetch_owner(ctx: Context) -> str | None:
    """The check that explains why the fetch failed; None when it worked."""
    error = ctx.role_credentials.error
    if error is None:
        return None
    if isinstance(error, IMDSDisabledError):
        return "imds-disabled"
    probe = ctx.probe
    no_token = isinstance(error, TokenError | IMDSUnreachableError)
    if no_token and probe is not None and probe.put.outcome == "no-answer":
        return "hop-limit"
    if isinstance(error, TrustPolicyError):
        return "trust-policy"
    if isinstance(error, CredentialsError | MalformedResponseError):
        return _PROFILE_OWNERS.get(profile_state(ctx).kind, "credentials-expiry")
    return "imds-reachable"


def reconcile(ctx: Context, finding: Finding) -> Finding:
    """``finding``, held to the library's fetch (see the module docstring)."""
    if finding.id not in FETCH_CHECKS or ctx.config is None:
        return finding
    fact = ctx.role_credentials
    if fact.error is None:
        if finding.status == "fail" and finding.id in _TRANSPORT_CHECKS:
            return warned(
                finding.id,
                finding.summary,
                _join(
                    finding.detail,
                    "Yet the role's credentials were fetched through the same settings right "
                    "after, so callers get them: a fault that passed.",
                ),
                finding.fix,
            )
        return finding
    if isinstance(fact.error, NotAsked) or ctx.failed(*FETCH_CHECKS) is not None:
        return finding  # not fetched, or an earlier finding already carries the fetch's message
    if finding.status == "fail":
        return _quoting(finding, fact.error)
    if fetch_owner(ctx) == finding.id:
        return _fetch_failed(ctx, finding.id, fact.error)
    return finding


def _join(*parts: str | None) -> str:
    return "\n".join(part for part in parts if part)


def _message(error: Exception) -> str:
    return error.message if isinstance(error, IMDSCredsError) else str(error)


def _said(error: Exception) -> str:
    if isinstance(error, OutOfTime):
        return f"The role's credentials were not fetched: {_message(error)}"
    return FETCH_FAILS + _message(error)


def _quoting(finding: Finding, error: Exception) -> Finding:
    detail = _join(finding.detail, _said(error))
    return failed(finding.id, finding.summary, detail, finding.fix)


def _fetch_failed(ctx: Context, check_id: str, error: Exception) -> Finding:
    """The failure a check reports when the fetch failed in a way its own look did not see."""
    config = ctx.config
    assert config is not None
    endpoint = config.endpoint
    said = _said(error)
    if check_id != "imds-reachable":
        return failed(
            check_id, f"the role's credentials cannot be fetched: {_message(error)}", said
        )
    probe = ctx.probe
    seen = (
        f"The doctor's token PUT {probe.put.describe(probe.timeout)}; a token-less GET "
        f"{probe.get.describe(probe.timeout)}."
        if probe is not None
        else None
    )
    status = error.status if isinstance(error, IMDSHTTPError) else None
    if isinstance(error, OutOfTime):
        summary = f"IMDS at {endpoint} answers too slowly to fetch the role's credentials in time"
        explained = "Each request was answered, but slowly: IMDS is overloaded or throttling."
        fix = fixes.imds_errors()
    elif status is not None and (status == 429 or 500 <= status <= 599):
        summary = f"IMDS at {endpoint} answers only with errors ({status})"
        if status == 429:
            explained = "429 means IMDS is throttling this instance: something calls it too often."
            fix = fixes.imds_throttled()
        else:
            explained = "IMDS errors are usually brief."
            fix = fixes.imds_errors()
    elif isinstance(error, IMDSUnreachableError):
        summary = f"IMDS at {endpoint} stopped answering while the role's credentials were fetched"
        explained = "It answered the doctor's first requests, then no more."
        fix = fixes.imds_unreachable(endpoint, config.source_of("endpoint"))
    else:
        summary = (
            f"something answers at {endpoint}, but not as IMDS does ({status})"
            if status is not None
            else f"IMDS at {endpoint} gives no session token: {_message(error).rstrip('.')}"
        )
        explained = (
            "IMDS answers a token PUT with 200 (or 403 when it is turned off) and a GET with 200, "
            "401 or 404: an answer outside that comes from something else in its place."
        )
        fix = fixes.imds_not_answering_as_imds(endpoint)
    return failed(check_id, summary, _join(said, seen, explained), fix)
