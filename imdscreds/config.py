"""IMDS settings: resolved once from arguments, the environment and ``~/.aws/config``.

Each field of :class:`IMDSConfig` comes from the first place that sets it: the argument of the same
name, then the env var, then the key in the profile of the config file, then the default (the AWS
SDKs' shared convention, DESIGN.md §3). This table is the one place that precedence is written:

    field                  (1) argument=  (2) env var  (3) config file key            (4) default
    endpoint               AWS_EC2_METADATA_SERVICE_ENDPOINT                         from the mode
                           ec2_metadata_service_endpoint
    endpoint_mode          AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE                    IPv4
                           ec2_metadata_service_endpoint_mode
    disabled               AWS_EC2_METADATA_DISABLED / disable_ec2_metadata          false
    v1_disabled            AWS_EC2_METADATA_V1_DISABLED / ec2_metadata_v1_disabled   false
    timeout                AWS_METADATA_SERVICE_TIMEOUT / metadata_service_timeout   1.0 (seconds)
    attempts               AWS_METADATA_SERVICE_NUM_ATTEMPTS                         3
                           metadata_service_num_attempts
    instance_profile_name  AWS_EC2_INSTANCE_PROFILE_NAME / ec2_instance_profile_name none: discover
    token_ttl              (argument only)                                           21600 (seconds)

An endpoint set at *any* level beats the endpoint mode set at any level: the SDKs' conformance case
"environment variable overrides endpoint mode override" has an env endpoint win over an explicit
mode argument. The mode is still validated, because a bad value there is a mistake worth reporting.

The config file is ``config_file=``, else ``AWS_CONFIG_FILE``, else ``~/.aws/config``; the profile
is ``profile=``, else ``AWS_PROFILE``, else ``AWS_DEFAULT_PROFILE``, else ``default``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]
from botocore.configloader import load_config  # type: ignore[import-untyped,unused-ignore]

from imdscreds.errors import ConfigError
from imdscreds.untrusted import QUOTE_LIMIT, printable, quote

__all__ = ["IPV4_ENDPOINT", "IPV6_ENDPOINT", "ROLE_NAME_VALID", "IMDSConfig", "role_name_problem"]

IPV4_ENDPOINT = "http://169.254.169.254"
IPV6_ENDPOINT = "http://[fd00:ec2::254]"
_MODES = {"ipv4": ("IPv4", IPV4_ENDPOINT), "ipv6": ("IPv6", IPV6_ENDPOINT)}
# RFC 3986 unreserved + reserved characters and "%"; anything else cannot appear in a URI as is.
_URI_CHARS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")
_ENDPOINT_VALID = (
    "expected an http or https URL such as http://169.254.169.254 or http://[fd00:ec2::254]"
)
# IAM role names (IAM's RoleName: [\w+=,.@-]+, 1 to 64): IMDS lists the role and the credentials
# path ends in its name, so anything else (/, ?, #, %) would rewrite the path that is requested.
_ROLE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "+=,.@_-")
_ROLE_NAME_MAX = 64
ROLE_NAME_VALID = "an IAM role name is 1 to 64 letters, digits and +=,.@_-, and not `.` or `..`"


def role_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the role in an IMDS credentials path; None when it can.

    The answer names the first character that is not allowed, never the name itself: what
    answers at the listing path may be anything, a credentials document included.
    """
    for at, char in enumerate(name):
        if char not in _ROLE_NAME_CHARS:
            return f"has {char!r} at {at}, which no IAM role name can have"
    if not name:
        return "is empty"
    if len(name) > _ROLE_NAME_MAX:
        return f"is {len(name)} characters long, over IAM's {_ROLE_NAME_MAX}"
    if name in (".", ".."):
        # The characters are IAM's, but an HTTP client resolves the path step: the request
        # would go to the listing or above it, never to a role.
        return f"is {name!r}, a path step that no request can name"
    return None


def _show(value: object) -> str:
    return printable(value, limit=QUOTE_LIMIT) if isinstance(value, str) else quote(value)


def _invalid(
    setting: str, value: object, source: str, problem: str, valid: str, *, hint: str = ""
) -> ConfigError:
    next_step = {
        "env": f"Fix or unset the environment variable {setting}.",
        "profile": f"Fix or remove {setting} in that profile of the config file.",
    }
    hint = hint or next_step.get(source.split(" ", 1)[0], f"Pass a valid value for {setting}.")
    return ConfigError(
        f"`{_show(value)}` {problem} ({setting}, from {source}); {valid}.",
        setting=setting,
        source=source,
        hint=hint,
    )


def _parse_bool(value: object, setting: str, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _invalid(setting, value, source, "is not a boolean", "expected true or false (any case)")


def _parse_timeout(value: object, setting: str, source: str) -> float:
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int larger than any float
            number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if not (math.isfinite(number) and number > 0):
        valid = "expected a positive number of seconds, such as 1 or 0.5"
        raise _invalid(setting, value, source, "is not a valid timeout", valid)
    return number


def _parse_int(value: object, setting: str, source: str, low: int, high: int | None) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value.strip())
    if number is None or number < low or (high is not None and number > high):
        valid = f"expected a whole number >= {low}"
        if high is not None:
            valid = f"expected a whole number from {low} to {high}"
        raise _invalid(setting, value, source, "is out of range or not a whole number", valid)
    return number


def _parse_attempts(value: object, setting: str, source: str) -> int:
    return _parse_int(value, setting, source, 1, None)


def _parse_token_ttl(value: object, setting: str, source: str) -> int:
    return _parse_int(value, setting, source, 1, 21600)  # IMDS answers 400 outside 1..21600


def _parse_mode(value: object, setting: str, source: str) -> str:
    if isinstance(value, str) and value.strip().lower() in _MODES:
        return _MODES[value.strip().lower()][0]
    valid = "valid endpoint modes are IPv4 and IPv6 (any case)"
    raise _invalid(setting, value, source, "is not a valid endpoint mode", valid)


def _endpoint_problem(value: str, parts: SplitResult) -> str | None:
    if parts.scheme.lower() not in ("http", "https"):
        return f"has scheme `{parts.scheme}`, but the scheme must be http or https"
    if "@" in parts.netloc:
        return "must not carry user information (user@ or user:password@)"
    if not parts.hostname:
        return "has no host"
    if "?" in value or "#" in value:
        return "must not have a query or a fragment (IMDS paths are appended to it)"
    if ":" in parts.hostname:
        try:
            ipaddress.IPv6Address(parts.hostname)
        except ValueError:
            return f"has an invalid IPv6 address `{parts.hostname}`"
    return None


def _parse_endpoint(value: object, setting: str, source: str) -> str:
    if not isinstance(value, str):
        raise _invalid(setting, value, source, "is not a URL string", _ENDPOINT_VALID)
    bad = [(at, char) for at, char in enumerate(value) if char not in _URI_CHARS]
    if bad:
        what = f"is not a valid endpoint: invalid uri character {bad[0][1]!r} at {bad[0][0]}"
        raise _invalid(setting, value, source, what, _ENDPOINT_VALID)
    problem: str | None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in 0..65535
        problem = _endpoint_problem(value, parts)
    except ValueError as exc:
        problem = f"cannot be parsed ({exc})"
    if problem is not None:
        raise _invalid(
            setting, value, source, f"is not a valid endpoint: it {problem}", _ENDPOINT_VALID
        )
    return value.rstrip("/")


def _parse_instance_profile_name(value: object, setting: str, source: str) -> str:
    # The SDKs call it the instance profile name, but it is the role IMDS lists.
    valid = f"expected an instance profile name, which is the name of its role: {ROLE_NAME_VALID}"
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise _invalid(setting, value, source, "is blank or not a string", valid)
    problem = role_name_problem(name)
    if problem is not None:
        raise _invalid(
            setting, value, source, f"is not a valid instance profile name: it {problem}", valid
        )
    return name


class _Setting(NamedTuple):
    env_var: str | None
    config_key: str | None
    parse: Callable[[object, str, str], Any]
    default: Any


_SETTINGS: dict[str, _Setting] = {
    "endpoint": _Setting(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint", _parse_endpoint, None
    ),
    "endpoint_mode": _Setting(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        "ec2_metadata_service_endpoint_mode",
        _parse_mode,
        "IPv4",
    ),
    "disabled": _Setting("AWS_EC2_METADATA_DISABLED", "disable_ec2_metadata", _parse_bool, False),
    "v1_disabled": _Setting(
        "AWS_EC2_METADATA_V1_DISABLED", "ec2_metadata_v1_disabled", _parse_bool, False
    ),
    "timeout": _Setting(
        "AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout", _parse_timeout, 1.0
    ),
    "attempts": _Setting(
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts", _parse_attempts, 3
    ),
    "instance_profile_name": _Setting(
        "AWS_EC2_INSTANCE_PROFILE_NAME",
        "ec2_instance_profile_name",
        _parse_instance_profile_name,
        None,
    ),
    "token_ttl": _Setting(None, None, _parse_token_ttl, 21600),
}


def _load_profile(
    environ: Mapping[str, str], config_file: str | os.PathLike[str] | None, profile: str | None
) -> tuple[str, str, Mapping[str, object]]:
    """Return (path, profile name, that profile's keys); a missing file gives no keys."""
    if config_file is not None:
        raw_path, path_source = os.fspath(config_file), "argument"
    elif environ.get("AWS_CONFIG_FILE"):
        raw_path, path_source = environ["AWS_CONFIG_FILE"], "env AWS_CONFIG_FILE"
    else:
        raw_path, path_source = "~/.aws/config", "default"
    path = os.path.expanduser(raw_path)
    name = profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    setting = "config_file" if path_source == "argument" else "AWS_CONFIG_FILE"
    valid = "expected a readable INI file with [default] and [profile NAME] sections"
    hint = "Fix that file, or point AWS_CONFIG_FILE (or config_file=) at a valid one."
    try:
        # configparser silently skips a file it cannot open, so open it once ourselves first.
        with open(path, "rb"):
            pass
        profiles = load_config(path)["profiles"]
    except (FileNotFoundError, NotADirectoryError, botocore.exceptions.ConfigNotFound):
        return path, name, {}  # no config file is the common case on EC2: use the defaults
    except OSError as exc:
        raise _invalid(
            setting, path, path_source, f"cannot be read ({exc.strerror})", valid, hint=hint
        ) from exc
    except botocore.exceptions.ConfigParseError as exc:
        raise _invalid(
            setting, path, path_source, f"cannot be parsed ({exc})", valid, hint=hint
        ) from exc
    # A profile named but absent from an existing file contributes nothing, as in botocore's own
    # IMDS settings lookup: the other settings still resolve from arguments, env and defaults.
    section = profiles.get(name, {})
    return path, name, section if isinstance(section, dict) else {}


def _env_given(env: Mapping[str, str], var: str, name: str) -> bool:
    # An empty variable counts as unset, as in the SDKs (`FOO= cmd`, compose files with blanks);
    # only a blank role name is an error: it can only be a mistake.
    return var in env and (env[var] != "" or name == "instance_profile_name")


@dataclass(frozen=True, kw_only=True)
class IMDSConfig:
    """Resolved IMDS settings; build with :meth:`resolve`. ``sources`` says where each came from."""

    endpoint: str
    endpoint_mode: str
    disabled: bool
    v1_disabled: bool
    timeout: float
    attempts: int
    instance_profile_name: str | None
    token_ttl: int = 21600
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # Direct construction (tests, dataclasses.replace) gets the same checks as resolve().
        for name, setting in _SETTINGS.items():
            value = getattr(self, name)
            if value is not None or name != "instance_profile_name":
                object.__setattr__(self, name, setting.parse(value, name, self.source_of(name)))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def total_timeout(self) -> float:
        """The longest one credentials fetch may take, in seconds: ``(attempts + 2) * timeout``.

        Room for the token, the role listing and the document, and for the retries of one of them
        (backoff waits included); each single attempt ends within ``timeout``, whatever the server
        sends or however slowly. A fetch still running at this deadline gives up.
        """
        return (self.attempts + 2) * self.timeout

    @property
    def token_url(self) -> str:
        """The URL of the IMDSv2 session token (``PUT``)."""
        return self.url("/latest/api/token")

    def url(self, path: str) -> str:
        """The endpoint joined with ``path``, which starts with ``/``."""
        if not path.startswith("/"):
            raise ValueError(f"IMDS path must start with '/': {path!r}")
        return self.endpoint + path

    def source_of(self, name: str) -> str:
        """Where field ``name`` came from: ``argument``, ``env VAR``, ``profile P in F (key)``..."""
        if name not in _SETTINGS:
            raise ValueError(f"IMDSConfig has no setting {name!r}; it has {', '.join(_SETTINGS)}")
        return self.sources.get(name, "argument")

    @classmethod
    def resolve(
        cls,
        *,
        endpoint: str | None = None,
        endpoint_mode: str | None = None,
        disabled: bool | str | None = None,
        v1_disabled: bool | str | None = None,
        timeout: float | str | None = None,
        attempts: int | str | None = None,
        instance_profile_name: str | None = None,
        token_ttl: int | str | None = None,
        environ: Mapping[str, str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        profile: str | None = None,
    ) -> IMDSConfig:
        """Resolve every setting by the precedence in this module's docstring.

        ``None`` means "not given"; ``environ`` defaults to ``os.environ``. Raises ConfigError for
        any invalid value, naming the setting, the value, where it came from and what is valid.
        """
        env = os.environ if environ is None else environ
        arguments: dict[str, object] = {
            "endpoint": endpoint,
            "endpoint_mode": endpoint_mode,
            "disabled": disabled,
            "v1_disabled": v1_disabled,
            "timeout": timeout,
            "attempts": attempts,
            "instance_profile_name": instance_profile_name,
            "token_ttl": token_ttl,
        }
        path, profile_name, section = _load_profile(env, config_file, profile)
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, setting in _SETTINGS.items():
            if arguments[name] is not None:
                label, raw, source = name, arguments[name], "argument"
            elif setting.env_var is not None and _env_given(env, setting.env_var, name):
                label, raw, source = setting.env_var, env[setting.env_var], f"env {setting.env_var}"
            elif setting.config_key is not None and setting.config_key in section:
                label, raw = setting.config_key, section[setting.config_key]
                source = f"profile {profile_name} in {path} ({setting.config_key})"
            else:
                values[name], sources[name] = setting.default, "default"
                continue
            values[name], sources[name] = setting.parse(raw, label, source), source
        if values["endpoint"] is None:
            mode, mode_source = values["endpoint_mode"], sources["endpoint_mode"]
            values["endpoint"] = _MODES[mode.lower()][1]
            sources["endpoint"] = (
                "default" if mode_source == "default" else f"endpoint_mode {mode} ({mode_source})"
            )
        return cls(**values, sources=sources)
