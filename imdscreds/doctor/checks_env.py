"""Checks of the process's environment: what makes the SDKs skip, misroute or outrank IMDS."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
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
            fixes.invalid_setting(
                getattr(error, "setting", None),
                getattr(error, "source", None),
                _expand(ctx.config_file_path, ctx.environ),
            ),
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


# What a profile holds that botocore uses before the instance role, as the end of the sentence
# "the profile P in FILE, which ...". The credential_process command itself is not shown: a command
# line may carry what should not be printed.
_PROFILE_SOURCES = (
    ("role_arn", "assumes the role {value} (role_arn)"),
    ("web_identity_token_file", "uses web identity (web_identity_token_file)"),
    ("sso_session", "uses IAM Identity Center (sso_session)"),
    ("sso_start_url", "uses IAM Identity Center (sso_start_url)"),
    ("credential_process", "runs a credential_process"),
    ("aws_access_key_id", "holds the access key {value}"),
)


def _runs_imdscreds_credentials(command: object) -> bool:
    """Whether a ``credential_process`` runs ``imdscreds credentials``: the instance role itself.

    The README's recipe, by name or absolute path (``/opt/app/.venv/bin/imdscreds credentials``),
    or through ``python -m imdscreds``; options after the subcommand do not matter.
    """
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if len(words) >= 3 and words[1:3] == ["-m", "imdscreds"]:
        words = words[2:]
    if not words or os.path.basename(words[0]) not in ("imdscreds", "imdscreds.exe"):
        return False
    rest = [word for word in words[1:] if word not in ("-v", "-vv", "--verbose")]
    return bool(rest) and rest[0] == "credentials"


@dataclass
class _Chain:
    """What botocore's credential chain finds before the instance role."""

    wins: list[str] = field(default_factory=list)  # sources that win over the instance role
    broken: list[str] = field(default_factory=list)  # problems that stop the chain
    ours: str | None = None  # a profile that gets the instance role through imdscreds


def _shadows(ctx: Context) -> _Chain:
    env = ctx.environ
    chain = _Chain()
    wins, broken = chain.wins, chain.broken
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
            if not section.get(key):
                continue
            if key == "credential_process" and _runs_imdscreds_credentials(section[key]):
                chain.ours = f"the profile {profile} in {path}"
            else:
                wins.append(
                    f"the profile {profile} in {path}, which " + words.format(value=section[key])
                )
            break
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        if env.get(name):
            wins.append(f"the container credentials endpoint ({name})")
    return chain


def check_credential_shadowing(ctx: Context) -> Finding:
    chain = _shadows(ctx)
    wins, broken = chain.wins, chain.broken
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
    if chain.ours is not None:
        return passed(
            "credential-shadowing",
            f"{chain.ours} gets the instance role through `imdscreds credentials` "
            "(credential_process); nothing outranks it",
        )
    return passed(
        "credential-shadowing", "nothing outranks the instance role in botocore's credential chain"
    )
