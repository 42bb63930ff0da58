"""Checks of the process's environment: what makes the SDKs skip, misroute or outrank IMDS."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

# Not in typeshed, but public and what botocore's proxy decision rests on (urllib.request.proxy_bypass).
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]
from botocore.configloader import (  # type: ignore[import-untyped,unused-ignore]
    load_config,
    raw_config_parse,
)

from imdscreds.config import IPV4_ENDPOINT
from imdscreds.doctor import fixes
from imdscreds.doctor.context import Context
from imdscreds.doctor.findings import Finding, failed, passed, skipped, warned

__all__ = [
    "check_credential_shadowing",
    "check_endpoint_config",
    "check_proxy_env",
    "check_sdk_disabled",
]

_SETTING_ORDER = (
    "endpoint",
    "endpoint_mode",
    "disabled",
    "v1_disabled",
    "timeout",
    "attempts",
    "instance_profile_name",
)


def check_sdk_disabled(ctx: Context) -> Finding:
    config = ctx.config
    if config is None:
        return skipped("sdk-disabled", "the IMDS settings are invalid (endpoint-config failed)")
    if not config.disabled:
        return passed(
            "sdk-disabled", "the AWS SDKs may call IMDS (metadata lookups are not disabled)"
        )
    source = config.source_of("disabled")
    if source.startswith("env"):
        fix = (
            "Unset AWS_EC2_METADATA_DISABLED where it is set (the shell profile, /etc/environment, "
            "the systemd unit's Environment=, the container's environment; in Terraform, the "
            "user_data or task definition that sets it). No console setting is involved."
        )
    else:
        fix = f"Remove disable_ec2_metadata from {source.split(' (')[0]}."
    return failed(
        "sdk-disabled",
        f"the AWS SDKs are told never to call IMDS ({source})",
        "With this set, botocore, the AWS CLI and imdscreds never ask IMDS for the instance "
        "role's credentials and end in 'Unable to locate credentials'. The doctor checks IMDS "
        "anyway, to show what they would find.",
        fix,
    )


def check_endpoint_config(ctx: Context) -> Finding:
    error = ctx.settings.error
    if error is not None:
        return failed(
            "endpoint-config",
            "an IMDS setting is invalid, so the SDKs cannot use IMDS",
            str(error),
            "Fix or unset that setting. Valid: AWS_EC2_METADATA_SERVICE_ENDPOINT a URL such as "
            "http://169.254.169.254; AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE IPv4 or IPv6; "
            "AWS_METADATA_SERVICE_TIMEOUT seconds; AWS_METADATA_SERVICE_NUM_ATTEMPTS a whole "
            "number; the same names in lower case without AWS_ in ~/.aws/config.",
        )
    config = ctx.config
    assert config is not None
    lines = []
    for name in _SETTING_ORDER:
        value = getattr(config, name)
        lines.append(
            f"{name} = {value if value is not None else '(discover)'} ({config.source_of(name)})"
        )
    return passed(
        "endpoint-config",
        f"IMDS endpoint {config.endpoint} ({config.source_of('endpoint')})",
        "\n".join(lines),
    )


def _proxies(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``scheme -> (variable, URL)`` as urllib (and so botocore) reads them: lower case wins."""
    found: dict[str, tuple[str, str]] = {}
    for lower_only in (False, True):
        for name, value in environ.items():
            if not name.lower().endswith("_proxy") or (lower_only and name != name.lower()):
                continue
            if (
                name.upper() == "HTTP_PROXY"
                and name != name.lower()
                and "REQUEST_METHOD" in environ
            ):
                continue  # urllib ignores HTTP_PROXY in a CGI process (httpoxy)
            scheme = name.lower()[: -len("_proxy")]
            if value:
                found[scheme] = (name, value)
            elif lower_only:
                found.pop(scheme, None)
    return found


def _redact(url: str) -> str:
    """A proxy URL without its user:password@ part."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_proxy_env(ctx: Context) -> Finding:
    proxies = _proxies(ctx.environ)
    used = {scheme: proxies[scheme] for scheme in ("http", "all") if scheme in proxies}
    if not used:
        return passed("proxy-env", "no HTTP proxy is set in the environment")
    endpoint = ctx.config.endpoint if ctx.config is not None else IPV4_ENDPOINT
    netloc = urlsplit(endpoint).netloc
    no_proxy = proxies["no"][1] if "no" in proxies else None
    variables = [name for name, _ in used.values()]
    shown = ", ".join(f"{name}={_redact(url)}" for name, url in used.values())
    if no_proxy is not None and proxy_bypass_environment(netloc, {"no": no_proxy}):
        return passed("proxy-env", f"{shown} is set, and NO_PROXY exempts {netloc}")
    return warned(
        "proxy-env",
        f"{shown} is set without a NO_PROXY entry for {netloc}",
        "imdscreds never sends IMDS traffic through a proxy, but botocore, the AWS CLI, curl and "
        "other tools do: their requests for the instance role's credentials go to the proxy, "
        "which cannot reach this instance's link-local IMDS (or, worse, answers with its own "
        "host's role).",
        fixes.proxy_env(variables),
    )


def _expand(path: str, environ: Mapping[str, str]) -> str:
    if path.startswith("~") and environ.get("HOME"):
        return environ["HOME"] + path[1:]
    return os.path.expanduser(path)


def _read_sections(path: str, *, config_style: bool) -> dict[str, dict[str, object]] | str:
    """The file's profiles; a string says why it could not be read. A missing file has none."""
    if not os.path.isfile(path):
        return {}
    try:
        if config_style:
            profiles: dict[str, dict[str, object]] = load_config(path)["profiles"]
            return profiles
        sections: dict[str, dict[str, object]] = raw_config_parse(path)
        return sections
    except (botocore.exceptions.BotoCoreError, OSError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read: {exc}"


_PROFILE_SOURCES = (
    ("role_arn", "assumes the role {value} (role_arn)"),
    ("web_identity_token_file", "uses web identity (web_identity_token_file)"),
    ("sso_session", "uses IAM Identity Center (sso_session)"),
    ("sso_start_url", "uses IAM Identity Center (sso_start_url)"),
    ("credential_process", "runs credential_process"),
    ("aws_access_key_id", "holds the access key {value}"),
)


def _shadows(ctx: Context) -> tuple[list[str], list[str]]:
    """(sources that win over the instance role in botocore's chain, problems that break it)."""
    env = ctx.environ
    wins: list[str] = []
    broken: list[str] = []
    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key_id and secret:
        wins.append(f"environment variables AWS_ACCESS_KEY_ID ({key_id}) and AWS_SECRET_ACCESS_KEY")
    elif key_id or secret:
        half = "AWS_ACCESS_KEY_ID" if key_id else "AWS_SECRET_ACCESS_KEY"
        broken.append(f"only {half} is set: botocore stops with PartialCredentialsError")
    if env.get("AWS_ROLE_ARN") and env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        wins.append(
            f"web identity from AWS_ROLE_ARN ({env['AWS_ROLE_ARN']}) and AWS_WEB_IDENTITY_TOKEN_FILE"
        )
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    named = "AWS_PROFILE" if env.get("AWS_PROFILE") else "AWS_DEFAULT_PROFILE"
    config_path = _expand(ctx.config_file_path, env)
    credentials_path = _expand(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", env)
    config = _read_sections(config_path, config_style=True)
    credentials = _read_sections(credentials_path, config_style=False)
    for sections in (config, credentials):
        if isinstance(sections, str):
            broken.append(sections)
    config = config if isinstance(config, dict) else {}
    credentials = credentials if isinstance(credentials, dict) else {}
    if profile != "default" and profile not in config and profile not in credentials:
        broken.append(
            f"{named}={profile} names a profile in neither {config_path} nor {credentials_path}: "
            "botocore stops with ProfileNotFound before it reaches the instance role"
        )
    for path, section in (
        (config_path, config.get(profile)),
        (credentials_path, credentials.get(profile)),
    ):
        if not isinstance(section, dict):
            continue
        for key, words in _PROFILE_SOURCES:
            if section.get(key):
                wins.append(f"profile {profile} in {path} " + words.format(value=section[key]))
                break
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        if env.get(name):
            wins.append(f"the container credentials endpoint ({name})")
    return wins, broken


def check_credential_shadowing(ctx: Context) -> Finding:
    wins, broken = _shadows(ctx)
    fix = (
        "If the instance role is what this process should use: unset AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_PROFILE; remove the profile's keys "
        "(or role_arn, credential_process, sso_*) from ~/.aws/credentials and ~/.aws/config. "
        "These are settings of the process and its files: nothing in the console or Terraform."
    )
    if broken:
        return failed(
            "credential-shadowing",
            "the SDKs' credential chain breaks before it reaches the instance role",
            "\n".join(broken + wins),
            fix,
        )
    if wins:
        return warned(
            "credential-shadowing",
            f"botocore would use {wins[0]}, not the instance role",
            "botocore takes the first credentials it finds, in this order: environment, "
            "assume-role and web-identity profiles, IAM Identity Center, the credentials file, "
            "credential_process, the config file, containers, and only then the instance role. "
            "Found:\n" + "\n".join(wins),
            fix,
        )
    return passed(
        "credential-shadowing", "nothing outranks the instance role in botocore's credential chain"
    )
