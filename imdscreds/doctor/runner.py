"""Run every check in the contract's order and gather a ``Report``.

Everything the doctor touches comes in as an argument with a real default (the environment, the
config file, the clock, botocore sessions, where progress goes), so tests build real situations
without patching anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.config import IMDSConfig
from imdscreds.credentials import format_timestamp
from imdscreds.doctor import aws
from imdscreds.doctor.checks_aws import (
    check_no_attached_policies,
    check_policies_unreadable,
    check_sts_identity,
)
from imdscreds.doctor.checks_env import (
    check_credential_shadowing,
    check_endpoint_config,
    check_proxy_env,
    check_sdk_disabled,
)
from imdscreds.doctor.checks_imds import (
    check_hop_limit,
    check_imds_disabled,
    check_imds_reachable,
    check_imds_v1_enabled,
    check_instance_identity,
)
from imdscreds.doctor.checks_role import (
    check_clock_skew,
    check_credentials_expiry,
    check_instance_profile_not_found,
    check_no_instance_profile,
    check_profile_without_role,
    check_trust_policy,
    profile_state,
)
from imdscreds.doctor.context import Context
from imdscreds.doctor.findings import CHECK_IDS, Finding, Report, failed
from imdscreds.doctor.verdict import reconcile
from imdscreds.errors import ConfigError

__all__ = ["CHECKS", "run_doctor"]

Check = Callable[[Context], Finding]

CHECKS: tuple[tuple[str, Check], ...] = (
    ("sdk-disabled", check_sdk_disabled),
    ("endpoint-config", check_endpoint_config),
    ("proxy-env", check_proxy_env),
    ("credential-shadowing", check_credential_shadowing),
    ("imds-reachable", check_imds_reachable),
    ("imds-disabled", check_imds_disabled),
    ("hop-limit", check_hop_limit),
    ("imds-v1-enabled", check_imds_v1_enabled),
    ("instance-identity", check_instance_identity),
    ("no-instance-profile", check_no_instance_profile),
    ("instance-profile-not-found", check_instance_profile_not_found),
    ("profile-without-role", check_profile_without_role),
    ("trust-policy", check_trust_policy),
    ("credentials-expiry", check_credentials_expiry),
    ("clock-skew", check_clock_skew),
    ("sts-identity", check_sts_identity),
    ("no-attached-policies", check_no_attached_policies),
    ("policies-unreadable", check_policies_unreadable),
)
assert tuple(check_id for check_id, _ in CHECKS) == CHECK_IDS


def run_doctor(
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    imds_config: IMDSConfig | None = None,
    endpoint: str | None = None,
    timeout: float | str | None = None,
    attempts: int | str | None = None,
    role_name: str | None = None,
    offline: bool = False,
    iam_profile: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    session_factory: aws.SessionFactory | None = None,
    progress: Callable[[str], None] | None = None,
    slow_after: float = 1.0,
) -> Report:
    """Diagnose the instance role; every finding of ``CHECK_IDS`` comes back, in order.

    ``imds_config`` skips resolving the IMDS settings (``endpoint`` ... ``role_name`` are then
    ignored); otherwise they resolve from those arguments, ``environ`` (default ``os.environ``) and
    the config file, as everywhere in imdscreds. ``session_factory(profile)`` makes the botocore
    sessions for STS and IAM; ``iam_profile`` names the profile whose credentials read the role in
    IAM. ``progress`` hears what the doctor waits on whenever a step takes over ``slow_after`` s.

    Raises ConfigError only for the caller's own arguments (a bad ``endpoint``, an unknown
    ``iam_profile``); a bad setting in the environment or the config file is a finding.
    """
    factory = session_factory or aws.default_session_factory
    if iam_profile is not None and not offline and not aws.profile_exists(factory, iam_profile):
        raise ConfigError(
            f"--iam-profile {iam_profile}: there is no such profile in the AWS config or "
            "credentials file.",
            setting="iam_profile",
            source="argument",
            hint="Name a profile from `aws configure list-profiles`.",
        )
    arguments: dict[str, Any] = {
        "endpoint": endpoint,
        "timeout": timeout,
        "attempts": attempts,
        "instance_profile_name": role_name,
    }
    ctx = Context(
        environ=os.environ if environ is None else environ,
        config_file=config_file,
        imds_config=imds_config,
        imds_arguments=arguments,
        offline=offline,
        iam_profile=iam_profile,
        clock=clock,
        session_factory=factory,
        progress=progress or (lambda _message: None),
        slow_after=slow_after,
    )
    started = clock.monotonic()
    try:
        for check_id, check in CHECKS:
            ctx.findings[check_id] = _run_one(check_id, check, ctx)
        return Report(
            findings=tuple(ctx.findings[check_id] for check_id in CHECK_IDS),
            duration_s=max(0.0, clock.monotonic() - started),
            instance=_instance(ctx),
            role=_role(ctx),
        )
    finally:
        ctx.close()


def _run_one(check_id: str, check: Check, ctx: Context) -> Finding:
    try:
        return reconcile(ctx, check(ctx))
    except ConfigError as exc:
        if exc.source == "argument":
            raise
        return failed(check_id, f"the check stopped on a configuration error: {exc}")
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others' findings
        return failed(
            check_id,
            f"the check itself failed ({type(exc).__name__}: {exc})",
            "This is a bug in imdscreds doctor; please report it with this output.",
        )


def _instance(ctx: Context) -> dict[str, Any]:
    probe = ctx.peek("probe")
    version = None
    if probe is not None and probe.usable:
        version = "v2" if probe.token else "v1"
    config = ctx.config
    return {
        "imds_endpoint": config.endpoint if config is not None else None,
        "imds_endpoint_source": config.source_of("endpoint") if config is not None else None,
        "imds_version": version,
        "instance_id": ctx.known("instanceId"),
        "instance_type": ctx.known("instanceType"),
        "region": ctx.known("region"),
        "availability_zone": ctx.known("availabilityZone"),
        "account_id": ctx.known("accountId"),
    }


def _policy_names(result: aws.AwsResult | None, key: str, field: str | None) -> list[str] | None:
    if result is None or result.response is None:
        return None
    items = result.response.get(key) or []
    return [str(item.get(field) if field and isinstance(item, dict) else item) for item in items]


def _role(ctx: Context) -> dict[str, Any]:
    credentials_fact = ctx.peek("role_credentials")
    credentials = credentials_fact.value if credentials_fact is not None else None
    identity = ctx.peek("caller_identity")
    arn = identity.response.get("Arn") if identity is not None and identity.response else None
    document = ctx.peek("role_document")
    trust = None
    if document is not None and document.response is not None:
        trust = aws.trust_allows_ec2(
            document.response.get("Role", {}).get("AssumeRolePolicyDocument")
        )
    profile_arn = None
    if ctx.peek("iam_info") is not None and ctx.peek("role_credentials") is not None:
        profile_arn = profile_state(ctx).profile_arn

    def stamp(value: Any) -> str | None:
        return format_timestamp(value) if value is not None else None

    account = credentials.account_id if credentials is not None else None
    if account is None and isinstance(arn, str) and arn.count(":") >= 5:
        account = arn.split(":")[4] or None  # arn:aws:sts::ACCOUNT:assumed-role/...
    return {
        "name": ctx.role_name,
        "instance_profile_arn": profile_arn,
        "arn": arn,
        "account_id": account,
        "credentials_endpoint": ctx.fetcher.api if credentials is not None else None,
        "access_key_id": credentials.access_key_id if credentials is not None else None,
        "expiration": stamp(credentials.expiration) if credentials is not None else None,
        "last_updated": stamp(credentials.last_updated) if credentials is not None else None,
        "trust_allows_ec2": trust,
        "attached_policies": _policy_names(
            ctx.peek("attached_policies"), "AttachedPolicies", "PolicyName"
        ),
        "inline_policies": _policy_names(ctx.peek("inline_policies"), "PolicyNames", None),
    }
