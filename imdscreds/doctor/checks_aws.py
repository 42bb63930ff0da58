"""Checks against AWS itself: do the credentials work (STS), and does the role hold any policy (IAM)."""

from __future__ import annotations

from imdscreds.doctor import aws, fixes
from imdscreds.doctor.context import Context
from imdscreds.doctor.findings import FETCH_CHECKS, Finding, failed, passed, skipped, warned

__all__ = ["check_no_attached_policies", "check_policies_unreadable", "check_sts_identity"]

_OFFLINE = "--offline: no AWS API calls"
_CLOCK_CODES = frozenset({"SignatureDoesNotMatch", "RequestExpired", "InvalidSignatureException"})


def _no_credentials_reason(ctx: Context) -> str:
    for check_id in FETCH_CHECKS:
        if ctx.failed(check_id):
            return f"no role credentials to try ({check_id} failed)"
    return "no role credentials to try"


def check_sts_identity(ctx: Context) -> Finding:
    if ctx.offline:
        return skipped("sts-identity", _OFFLINE)
    result = ctx.caller_identity
    if result is None:
        return skipped("sts-identity", _no_credentials_reason(ctx))
    if result.ok and result.response is not None:
        arn = str(result.response.get("Arn"))
        role = ctx.role_name
        if role is not None and f":assumed-role/{role}/" not in arn:
            return warned(
                "sts-identity",
                f"the credentials belong to {arn}, not to the role {role}",
                "Something between this process and IMDS hands out another role's credentials "
                "(a metadata proxy such as kube2iam or kiam).",
                "Check AWS_EC2_METADATA_SERVICE_ENDPOINT and the node's metadata proxy "
                "configuration.",
            )
        return passed("sts-identity", f"the credentials work: {arn}")
    said = result.describe()
    if result.unreachable:
        return failed(
            "sts-identity",
            "STS did not answer, so the credentials could not be tried",
            f"{said} (region {ctx.region}).",
            fixes.sts_unreachable(ctx.region),
        )
    if result.code in _CLOCK_CODES:
        return failed(
            "sts-identity",
            f"STS rejected the request's signature ({result.code})",
            f"{said}. A signature that expired or does not match with valid credentials usually "
            "means this machine's clock is off (see clock-skew).",
            fixes.clock_skew(),
        )
    if result.code == "ExpiredToken":
        return failed(
            "sts-identity",
            "STS says the credentials have expired",
            f"{said}. See credentials-expiry and clock-skew.",
            fixes.credentials_unusable(ctx.config.endpoint if ctx.config else "the endpoint"),
        )
    return failed(
        "sts-identity",
        f"STS does not accept the credentials IMDS issued ({result.code})",
        f"{said}. Usually the role was deleted and created again since IMDS fetched them (a new "
        "role has a new id, and old sessions die with the old one), or STS is deactivated in "
        f"{ctx.region} for this account.",
        "Wait five minutes for IMDS's next refresh and run the doctor again. If it persists: "
        "console: EC2 > Instances > the instance > Actions > Security > Modify IAM role, choose "
        "the role again (AWS CLI: aws ec2 replace-iam-instance-profile-association; Terraform: "
        "apply the aws_instance's iam_instance_profile again); and check IAM > Account settings > "
        f"Security Token Service (STS) endpoints: {ctx.region} active.",
    )


def _policy_reads(ctx: Context) -> tuple[aws.AwsResult, aws.AwsResult] | str:
    """Both IAM reads, or why they were not made."""
    if ctx.offline:
        return _OFFLINE
    if ctx.role_name is None:
        return "the role's name is unknown"
    attached, inline = ctx.attached_policies, ctx.inline_policies
    if ctx.iam_reader is None or attached is None or inline is None:
        return _no_credentials_reason(ctx) + "; --iam-profile reads with an administrator's"
    return attached, inline


def _names(result: aws.AwsResult, key: str, field: str | None) -> list[str]:
    items = (result.response or {}).get(key) or []
    return [str(item.get(field) if field and isinstance(item, dict) else item) for item in items]


def check_no_attached_policies(ctx: Context) -> Finding:
    reads = _policy_reads(ctx)
    if isinstance(reads, str):
        return skipped("no-attached-policies", reads)
    attached, inline = reads
    if not (attached.ok and inline.ok):
        return skipped(
            "no-attached-policies", "the role's policies could not be read (policies-unreadable)"
        )
    managed = _names(attached, "AttachedPolicies", "PolicyName")
    embedded = _names(inline, "PolicyNames", None)
    role = ctx.role_name or "ROLE_NAME"
    if not managed and not embedded:
        return failed(
            "no-attached-policies",
            f"the role {role} has no policy at all: every AWS call it makes is denied",
            f"IAM lists no managed and no inline policy for {role} (read with {ctx.iam_reader}). "
            "Its credentials still work for sts:GetCallerIdentity, which needs no permission, "
            "so the application sees AccessDenied on its first real call.",
            fixes.no_attached_policies(role),
        )
    parts = []
    if managed:
        parts.append(f"managed: {', '.join(managed)}")
    if embedded:
        parts.append(f"inline: {', '.join(embedded)}")
    return passed("no-attached-policies", f"the role has policies ({'; '.join(parts)})")


def check_policies_unreadable(ctx: Context) -> Finding:
    reads = _policy_reads(ctx)
    if isinstance(reads, str):
        return skipped("policies-unreadable", reads)
    bad = [result for result in reads if not result.ok]
    reader = ctx.iam_reader
    if not bad:
        return passed("policies-unreadable", f"the role's policies can be read (with {reader})")
    who = (
        "the role may not read its own"
        if ctx.iam_profile is None
        else (f"profile {ctx.iam_profile} may not read the role's")
    )
    role = ctx.role_name or "ROLE_NAME"
    account = ctx.known("accountId") or "ACCOUNT_ID"
    said = "; ".join(f"{result.operation}: {result.describe()}" for result in bad)
    if any(result.denied for result in bad):
        implication = (
            "A role with no policy at all is refused this too, so this is evidence, not a "
            "verdict: if the application's own calls also get AccessDenied, the role most likely "
            "has no policy that allows them."
            if ctx.iam_profile is None
            else f"Profile {ctx.iam_profile} may not read IAM roles; use an administrator's."
        )
        return warned(
            "policies-unreadable",
            f"{who} policies (AccessDenied)",
            f"AWS said: {said}\n{implication}",
            fixes.policies_unreadable(role, account),
        )
    return warned(
        "policies-unreadable",
        f"the role's policies could not be read with {reader}",
        f"AWS said: {said}",
        fixes.policies_unreadable(role, account),
    )
