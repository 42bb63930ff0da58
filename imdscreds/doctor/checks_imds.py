"""Checks of the metadata service itself: is it there, is it on, does the token reach us, v1, who."""

from __future__ import annotations

from imdscreds.doctor import fixes
from imdscreds.doctor.context import Context
from imdscreds.doctor.findings import Finding, failed, passed, skipped, warned

__all__ = [
    "check_hop_limit",
    "check_imds_disabled",
    "check_imds_reachable",
    "check_imds_v1_enabled",
    "check_instance_identity",
    "imds_blocked",
    "imds_gone",
    "instance_id",
]


def instance_id(ctx: Context) -> str:
    """The instance id if the identity document was read, else a placeholder for commands."""
    return ctx.known("instanceId") or "INSTANCE_ID"


def imds_gone(ctx: Context, *check_ids: str) -> str | None:
    """``ID failed`` for the first of ``check_ids`` that failed; the settings' failure first."""
    if ctx.config is None:
        return "the IMDS settings are invalid (endpoint-config failed)"
    finding = ctx.failed(*check_ids)
    return None if finding is None else f"{finding.id} failed"


def imds_blocked(ctx: Context, *also: str) -> str | None:
    """Why an IMDS check is pointless now: an earlier IMDS failure, or IMDS gone quiet."""
    reason = imds_gone(ctx, "imds-reachable", "imds-disabled", "hop-limit", *also)
    return reason if reason is not None else ctx.imds_down


def check_imds_reachable(ctx: Context) -> Finding:
    probe = ctx.probe
    config = ctx.config
    if probe is None or config is None:
        return skipped("imds-reachable", "the IMDS settings are invalid (endpoint-config failed)")
    where = f"{probe.endpoint} ({config.source_of('endpoint')})"
    put, get = probe.put.describe(probe.timeout), probe.get.describe(probe.timeout)
    if not probe.connected:
        return failed(
            "imds-reachable",
            f"no IMDS at {probe.endpoint}: {put}",
            f"Endpoint {where}. The TCP connection was never made, so this is not a hop limit or "
            "a disabled endpoint: "
            + (
                "nothing listens at the configured endpoint, or something blocks it."
                if fixes.endpoint_is_configured(config.source_of("endpoint"))
                else "off EC2 there is no IMDS, and on EC2 something blocks the address (a "
                "firewall rule, a network namespace without a route to it)."
            ),
            fixes.imds_unreachable(probe.endpoint, config.source_of("endpoint")),
        )
    if not probe.answered:
        return failed(
            "imds-reachable",
            f"IMDS at {probe.endpoint} accepts connections but never answers",
            f"Endpoint {where}. The token PUT: {put}; a token-less GET: {get}. A hop limit drops "
            "only the token's answer, so a plain GET would still be answered: here nothing is. "
            "IMDS is overloaded or throttling this instance, or something that is not IMDS holds "
            "the address (a proxy, a local agent).",
            fixes.imds_unreachable(probe.endpoint, config.source_of("endpoint")),
        )
    # Whether what answers works as IMDS is the fetch's to say (see verdict.py), not the probe's.
    first = probe.put if probe.put.answered else probe.get
    what = "token PUT" if first is probe.put else "token-less GET"
    return passed(
        "imds-reachable",
        f"IMDS answers at {probe.endpoint} ({what} {first.describe(probe.timeout)})",
    )


def check_imds_disabled(ctx: Context) -> Finding:
    reason = imds_gone(ctx, "imds-reachable")
    if reason is not None or ctx.probe is None:
        return skipped("imds-disabled", reason or "IMDS was not probed")
    put, get = ctx.probe.put, ctx.probe.get
    if put.status == 403 and get.status in (None, 403):
        return failed(
            "imds-disabled",
            "the metadata endpoint is turned off for this instance (IMDS answers 403)",
            "The instance's metadata options have HttpEndpoint=disabled, so IMDS refuses every "
            "request and no process on the instance can have the role's credentials.",
            fixes.imds_disabled(instance_id(ctx)),
        )
    if put.status == 403:
        return warned(
            "imds-disabled",
            "IMDS refuses the token PUT (403) but answers token-less GETs",
            "IMDS refuses a token request that carries X-Forwarded-For, which a proxy in the way "
            "adds: only IMDSv1 works through it, and nothing can work once IMDSv2 is required.",
            "Send IMDS traffic directly (see proxy-env), not through an HTTP proxy or a "
            "metadata proxy container.",
        )
    return passed("imds-disabled", "the metadata endpoint is enabled")


def check_hop_limit(ctx: Context) -> Finding:
    reason = imds_gone(ctx, "imds-reachable", "imds-disabled")
    if reason is not None or ctx.probe is None or ctx.config is None:
        return skipped("hop-limit", reason or "IMDS was not probed")
    probe, config = ctx.probe, ctx.config
    put = probe.put
    if put.outcome != "no-answer":
        return passed(
            "hop-limit",
            f"the token PUT's answer reaches this process ({put.describe(probe.timeout)})",
        )
    fix = fixes.hop_limit(instance_id(ctx))
    waited = f"IMDS accepted the token PUT and never answered it within {probe.timeout:g} s"
    if probe.v1_allowed is True:
        if config.v1_disabled:
            return failed(
                "hop-limit",
                "the token's answer never arrives: the PUT response hop limit is too low here",
                f"{waited}, while a token-less GET works. AWS_EC2_METADATA_V1_DISABLED "
                f"({config.source_of('v1_disabled')}) forbids the IMDSv1 fallback, so the SDKs "
                "get no credentials at all.",
                fix,
            )
        return warned(
            "hop-limit",
            "the token's answer never arrives: the PUT response hop limit is too low here",
            f"{waited}, while a token-less GET works: the signature of a container behind a hop "
            "limit of 1. The SDKs wait out every token request, then fall back to IMDSv1, which "
            "stops working once IMDSv2 is required.",
            fix,
        )
    if probe.v1_allowed is False:
        return failed(
            "hop-limit",
            "the token's answer never arrives and IMDS requires tokens: nothing here gets "
            "credentials",
            f"{waited}, and a token-less GET is refused (401): IMDSv2 is required on this "
            "instance, and the PUT response hop limit is too low for a container to get a token.",
            fix,
        )
    return failed(
        "hop-limit",
        "the token's answer never arrives: likely the PUT response hop limit",
        f"{waited}; the token-less GET {probe.get.describe(probe.timeout)}, so the doctor cannot "
        "confirm it.",
        fix,
    )


def check_imds_v1_enabled(ctx: Context) -> Finding:
    reason = imds_gone(ctx, "imds-reachable", "imds-disabled")
    if reason is not None or ctx.probe is None:
        return skipped("imds-v1-enabled", reason or "IMDS was not probed")
    probe = ctx.probe
    if probe.v1_allowed is False:
        return passed(
            "imds-v1-enabled", "IMDSv2 is required (a token-less GET is refused with 401)"
        )
    if probe.v1_allowed is None:
        return skipped(
            "imds-v1-enabled",
            f"cannot tell: the token-less GET {probe.get.describe(probe.timeout)}",
        )
    only_v1 = "" if probe.token else " (and IMDSv2 does not work from here)"
    return warned(
        "imds-v1-enabled",
        f"IMDSv1 is enabled: a token-less GET is answered{only_v1}",
        "With IMDSv1 any process on the instance, or a server-side request forgery bug in a web "
        "application on it, can read the role's credentials with one plain GET. IMDSv2's token "
        "(a PUT first, with a hop limit) blocks both.",
        fixes.v1_enabled(instance_id(ctx)),
    )


def check_instance_identity(ctx: Context) -> Finding:
    reason = imds_blocked(ctx)
    if reason is not None:
        return skipped("instance-identity", reason)
    fact = ctx.identity
    if fact.error is not None or fact.value is None:
        return warned(
            "instance-identity",
            f"the instance identity document cannot be read: {fact.error}",
            "The role's credentials do not depend on it, but it is odd for IMDS to fail here.",
        )
    document = fact.value.document
    if document is None:
        return warned("instance-identity", "IMDS has no instance identity document (404)")
    fields = {
        key: document.get(key)
        for key in ("instanceId", "instanceType", "region", "availabilityZone", "accountId")
    }
    return passed(
        "instance-identity",
        f"{fields['instanceId']} ({fields['instanceType']}) in {fields['availabilityZone'] or fields['region']}, "
        f"account {fields['accountId']}",
    )
