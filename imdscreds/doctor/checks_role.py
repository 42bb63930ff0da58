"""Checks of the instance profile and its role as IMDS sees them, the credentials, and the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from imdscreds.credentials import format_timestamp
from imdscreds.doctor import aws, fixes
from imdscreds.doctor.checks_imds import imds_blocked, instance_id
from imdscreds.doctor.context import Context
from imdscreds.doctor.findings import Finding, failed, passed, skipped, warned
from imdscreds.errors import (
    IMDSCodeError,
    MalformedResponseError,
    NoInstanceProfileError,
    RoleNotFoundError,
    TrustPolicyError,
)
from imdscreds.trust import explain_policy

__all__ = [
    "check_clock_skew",
    "check_credentials_expiry",
    "check_instance_profile_not_found",
    "check_no_instance_profile",
    "check_profile_without_role",
    "check_trust_policy",
    "duration",
    "profile_state",
]

# IMDS has new credentials "at least five minutes before the old ones expire".
IMDS_RENEWAL_LEAD = timedelta(minutes=5)
# A clock 5 min slow keeps using credentials past their expiry (IMDS renews them only 5 min
# ahead); at 15 min AWS rejects every signed request. A minute off is worth a look already.
SKEW_FAIL = 300.0
SKEW_WARN = 60.0

Kind = Literal["ok", "none", "not-found", "no-role", "error"]


@dataclass(frozen=True)
class ProfileState:
    """What IMDS says about the instance profile, from iam/info and the role's credentials."""

    kind: Kind
    profile_arn: str | None
    message: str | None

    @property
    def profile_name(self) -> str:
        if self.profile_arn and "/" in self.profile_arn:
            return self.profile_arn.rsplit("/", 1)[1]
        return "PROFILE_NAME"


def duration(seconds: float) -> str:
    """``5 h 59 min``, ``3 min 20 s``, ``42 s``."""
    seconds = abs(int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def profile_state(ctx: Context) -> ProfileState:
    info = ctx.iam_info.value
    document = info.document if info is not None else None
    code = document.get("Code") if document else None
    arn = document.get("InstanceProfileArn") if document else None
    message = document.get("Message") if document else None
    arn = arn if isinstance(arn, str) else None
    message = message if isinstance(message, str) else None
    error = ctx.role_credentials.error
    if code == "InstanceProfileNotFound" or (
        isinstance(error, IMDSCodeError) and error.code == "InstanceProfileNotFound"
    ):
        said = message or (error.imds_message if isinstance(error, IMDSCodeError) else None)
        return ProfileState("not-found", arn, said)
    if code == "InvalidInstanceProfile" or (message and "does not contain a role" in message):
        return ProfileState("no-role", arn, message or code)
    if isinstance(error, NoInstanceProfileError):
        if document is not None and code == "Success":
            return ProfileState("no-role", arn, "iam/info names a profile, but IMDS lists no role")
        return ProfileState("none", arn, str(error))
    if isinstance(error, RoleNotFoundError):
        return ProfileState("no-role", arn, str(error))
    if error is not None and not isinstance(error, IMDSCodeError | MalformedResponseError):
        return ProfileState("error", arn, str(error))
    return ProfileState("ok", arn, message)


def check_no_instance_profile(ctx: Context) -> Finding:
    reason = imds_blocked(ctx)
    if reason is not None:
        return skipped("no-instance-profile", reason)
    state = profile_state(ctx)
    if state.kind == "error":
        return failed(
            "no-instance-profile",
            "IMDS failed while the doctor looked up the instance's role",
            state.message,
            "Run the doctor again; if IMDS keeps failing here, see imds-reachable's advice.",
        )
    if state.kind == "none":
        return failed(
            "no-instance-profile",
            "no instance profile is attached: this instance has no role",
            "IMDS answers 404 for iam/info and for the role list. An instance gets a role only "
            "through an instance profile (a container that holds one role), attached to it.",
            fixes.no_instance_profile(instance_id(ctx), ctx.role_name or "ROLE_NAME"),
        )
    where = state.profile_arn or "an instance profile"
    return passed("no-instance-profile", f"{where} is attached")


def check_instance_profile_not_found(ctx: Context) -> Finding:
    reason = imds_blocked(ctx, "no-instance-profile")
    if reason is not None:
        return skipped("instance-profile-not-found", reason)
    state = profile_state(ctx)
    if state.kind == "not-found":
        return failed(
            "instance-profile-not-found",
            "the instance profile attached to this instance no longer exists",
            f"IMDS answers InstanceProfileNotFound: {state.message or '(no message)'} The profile "
            f"({state.profile_arn or 'its ARN is unknown'}) was deleted or replaced after it was "
            "attached; the instance still points at the old one.",
            fixes.instance_profile_not_found(instance_id(ctx), state.profile_name),
        )
    return passed("instance-profile-not-found", "the instance profile exists")


def check_profile_without_role(ctx: Context) -> Finding:
    reason = imds_blocked(ctx, "no-instance-profile", "instance-profile-not-found")
    if reason is not None:
        return skipped("profile-without-role", reason)
    state = profile_state(ctx)
    if state.kind == "no-role":
        configured = isinstance(ctx.role_credentials.error, RoleNotFoundError)
        return failed(
            "profile-without-role",
            f"IMDS has no role named {ctx.role_name} (the configured name)"
            if configured
            else "the instance profile holds no role",
            f"{state.message} An instance profile is only a container for one role; empty, or "
            "with its role deleted, it gives IMDS nothing to fetch credentials for.",
            fixes.profile_without_role(state.profile_name, ctx.role_name or "ROLE_NAME"),
        )
    return passed("profile-without-role", f"the profile holds the role {ctx.role_name}")


def _trust_detail(ctx: Context) -> tuple[bool | None, str]:
    """Whether the trust policy read through IAM lets EC2 assume the role, and what to say."""
    result = ctx.role_document
    if result is None:
        if ctx.offline:
            return None, "The trust policy was not read (--offline)."
        return None, (
            "The doctor could not read the trust policy (no credentials to ask IAM with); "
            "`imdscreds doctor --iam-profile ADMIN_PROFILE` reads it with an administrator's."
        )
    if not result.ok or result.response is None:
        return (
            None,
            f"The trust policy could not be read with {ctx.iam_reader}: {result.describe()}",
        )
    document = result.response.get("Role", {}).get("AssumeRolePolicyDocument")
    allows = aws.trust_allows_ec2(document)
    trusted = ", ".join(aws.trusted_principals(document)) or "no one"
    verdict = {True: "lets", False: "does not let", None: "cannot be judged whether it lets"}
    # The same engine as `imdscreds trust explain`: which statement lets EC2 in, or why none does.
    why = explain_policy(document).summary if isinstance(document, Mapping) else ""
    return allows, (
        f"The trust policy (read with {ctx.iam_reader}) trusts: {trusted}; it "
        f"{verdict[allows]} ec2.amazonaws.com assume the role. {why}"
    ).strip()


def check_trust_policy(ctx: Context) -> Finding:
    reason = imds_blocked(
        ctx, "no-instance-profile", "instance-profile-not-found", "profile-without-role"
    )
    if reason is not None:
        return skipped("trust-policy", reason)
    error = ctx.role_credentials.error
    role = ctx.role_name or "ROLE_NAME"
    if isinstance(error, TrustPolicyError):
        _, read = _trust_detail(ctx)
        return failed(
            "trust-policy",
            f"EC2 may not assume the role {role}: its trust policy does not allow it",
            "A role has two policies that matter here. Its permissions say what it may do; its "
            "trust policy says who may assume it, that is, take on its permissions. For an "
            "instance role the one who assumes it is the EC2 service, on the instance's behalf, "
            f"and the trust policy of {role} does not name ec2.amazonaws.com as allowed to call "
            "sts:AssumeRole, so IMDS has no credentials to give (AssumeRoleUnauthorizedAccess"
            f"{': ' + error.imds_message.strip() if error.imds_message else ''}).\n{read}",
            fixes.trust_policy(role),
        )
    if ctx.role_credentials.value is None:
        return skipped(
            "trust-policy", "IMDS issued no credentials to judge by (credentials-expiry)"
        )
    allows, read = _trust_detail(ctx)
    if allows is False:
        return warned(
            "trust-policy",
            f"IMDS still serves credentials for {role}, but its trust policy no longer lets EC2 "
            "assume it",
            read + " The credentials served now stop working at IMDS's next refresh.",
            fixes.trust_policy(role),
        )
    return passed(
        "trust-policy", f"EC2 may assume the role {role} (IMDS issued its credentials)", read
    )


def check_credentials_expiry(ctx: Context) -> Finding:
    reason = imds_blocked(
        ctx,
        "no-instance-profile",
        "instance-profile-not-found",
        "profile-without-role",
        "trust-policy",
    )
    if reason is not None:
        return skipped("credentials-expiry", reason)
    fact = ctx.role_credentials
    endpoint = ctx.config.endpoint if ctx.config is not None else "the IMDS endpoint"
    if fact.value is None:
        malformed = isinstance(fact.error, MalformedResponseError)
        return failed(
            "credentials-expiry",
            "IMDS issued no usable credentials",
            str(fact.error),
            fixes.credentials_malformed(endpoint)
            if malformed
            else fixes.credentials_unusable(endpoint),
        )
    credentials = fact.value
    now = ctx.clock.now()
    left = (credentials.expiration - now).total_seconds()
    expires = format_timestamp(credentials.expiration)
    detail = f"Access key {credentials.access_key_id}, from the {ctx.fetcher.api} endpoint."
    if left <= 0:
        return failed(
            "credentials-expiry",
            f"IMDS serves credentials that expired {duration(left)} ago ({expires})",
            detail + " Every AWS call with them fails with ExpiredToken. Either IMDS could not "
            "renew the role's session, or this machine's clock is ahead (see clock-skew).",
            fixes.credentials_unusable(endpoint),
        )
    if left < IMDS_RENEWAL_LEAD.total_seconds():
        return warned(
            "credentials-expiry",
            f"the credentials expire in {duration(left)} ({expires}), yet IMDS has no new ones",
            detail + " IMDS should hand out new credentials five minutes before the old ones "
            "expire; a clock that is behind (see clock-skew) makes it look late.",
            fixes.credentials_unusable(endpoint),
        )
    return passed("credentials-expiry", f"valid until {expires} (in {duration(left)})", detail)


def _skew(date: datetime | None, local: datetime | None) -> float | None:
    if date is None or local is None:
        return None
    # A Date header counts whole seconds: the server's time lies in [date, date + 1 s).
    return (local - date).total_seconds() - 0.5


def check_clock_skew(ctx: Context) -> Finding:
    if ctx.probe is None or not ctx.probe.answered:
        return skipped("clock-skew", "IMDS did not answer, and nothing else tells the time")
    readings: list[tuple[str, float]] = []
    for attempt in (ctx.probe.put, ctx.probe.get):
        skew = _skew(attempt.date, attempt.local_time)
        if skew is not None:
            readings.append(("IMDS", skew))
            break
    sts = ctx.caller_identity
    if sts is not None:
        skew = _skew(sts.date, sts.local_time)
        if skew is not None:
            readings.append(("STS", skew))
    if not readings:
        return skipped("clock-skew", "neither IMDS nor STS sent a Date header")
    said = ", ".join(
        f"{'ahead of' if skew > 0 else 'behind'} {who} by {abs(skew):.0f} s"
        for who, skew in readings
    )
    worst = max(abs(skew) for _, skew in readings)
    detail = (
        "A clock 5 minutes slow keeps using credentials after they expire (IMDS renews them "
        "only 5 minutes ahead); 15 minutes off, AWS rejects every signed request "
        "(SignatureDoesNotMatch: Signature expired)."
    )
    if worst >= SKEW_FAIL:
        return failed(
            "clock-skew", f"this machine's clock is off: {said}", detail, fixes.clock_skew()
        )
    if worst >= SKEW_WARN:
        return warned(
            "clock-skew", f"this machine's clock drifts: {said}", detail, fixes.clock_skew()
        )
    sources = " and ".join(who for who, _ in readings)
    return passed("clock-skew", f"the clock agrees with {sources} (within {max(worst, 1):.0f} s)")
