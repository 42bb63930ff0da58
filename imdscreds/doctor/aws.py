"""The doctor's calls to STS and IAM, through botocore, as plain results (never an exception).

Clients honour botocore's own endpoint settings (``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL_IAM``,
``endpoint_url`` in a profile), which is how the tests point them at moto's server on loopback. Each
call has short timeouts and a single attempt: the doctor must end in seconds even when AWS does not
answer, and one answer is all a diagnosis needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]
import botocore.session  # type: ignore[import-untyped,unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

from imdscreds.credentials import RoleCredentials
from imdscreds.transport import parse_http_date
from imdscreds.trust import explain_policy

__all__ = [
    "AWS_TIMEOUT",
    "AwsResult",
    "SessionFactory",
    "call",
    "default_session_factory",
    "new_client",
    "profile_exists",
    "trust_allows_ec2",
    "trusted_principals",
]

AWS_TIMEOUT = 2.0
SessionFactory = Callable[[str | None], Any]
"""``factory(profile) -> botocore.session.Session``; ``None`` is botocore's default profile."""

DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# Not AWS error codes: what the doctor records when no answer came back at all.
UNREACHABLE = "Unreachable"
NO_CREDENTIALS = "NoCredentials"
CLIENT_ERROR = "ClientError"


def default_session_factory(profile: str | None) -> Any:
    """A fresh botocore session, for ``profile`` or botocore's default one."""
    return botocore.session.Session(profile=profile)


@dataclass(frozen=True)
class AwsResult:
    """One API call's outcome: the parsed response, or the error code and AWS's message."""

    operation: str
    response: Mapping[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    date: datetime | None = None  # the response's Date header: the server's clock
    local_time: datetime | None = None  # our clock when the answer arrived (mid-call)

    @property
    def ok(self) -> bool:
        return self.response is not None

    @property
    def denied(self) -> bool:
        return self.code in DENIED_CODES

    @property
    def unreachable(self) -> bool:
        return self.code == UNREACHABLE

    def describe(self) -> str:
        """``Code: message`` for an error (AWS's own words), ``ok`` otherwise."""
        if self.ok:
            return "ok"
        return f"{self.code}: {self.message}" if self.message else str(self.code)


def profile_exists(factory: SessionFactory, profile: str) -> bool:
    """Whether ``profile`` is defined in the AWS config or credentials file botocore reads."""
    return profile in factory(None).available_profiles


def _client_config() -> Any:
    return Config(
        connect_timeout=AWS_TIMEOUT,
        read_timeout=AWS_TIMEOUT,
        retries={"total_max_attempts": 1},
        user_agent_extra="imdscreds-doctor",
    )


def new_client(
    factory: SessionFactory,
    service: str,
    *,
    region: str,
    credentials: RoleCredentials | None = None,
    profile: str | None = None,
) -> Any:
    """A botocore client for ``service``: with the role's credentials, or a profile's."""
    if credentials is not None:
        try:
            session = factory(None)
            session.get_scoped_config()
        except botocore.exceptions.ProfileNotFound:
            # AWS_PROFILE names a profile that does not exist (credential-shadowing reports it);
            # explicit credentials need no profile, so use the empty default one.
            session = factory("default")
        return session.create_client(
            service,
            region_name=region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.token,
            config=_client_config(),
        )
    return factory(profile).create_client(service, region_name=region, config=_client_config())


def _date(metadata: Mapping[str, Any] | None) -> datetime | None:
    headers = (metadata or {}).get("HTTPHeaders") or {}
    value = headers.get("date")
    return parse_http_date(value) if isinstance(value, str) else None


def call(client: Any, operation: str, now: Callable[[], datetime], **params: Any) -> AwsResult:
    """Call ``client.<operation>(**params)``; every failure becomes an ``AwsResult`` with a code."""
    before = now()
    try:
        response = getattr(client, operation)(**params)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error") or {}
        return AwsResult(
            operation,
            code=str(error.get("Code") or CLIENT_ERROR),
            message=str(error.get("Message") or exc),
            date=_date(exc.response.get("ResponseMetadata")),
            local_time=before + (now() - before) / 2,
        )
    except (
        botocore.exceptions.ConnectionError,
        botocore.exceptions.HTTPClientError,
    ) as exc:
        return AwsResult(operation, code=UNREACHABLE, message=str(exc))
    except (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.PartialCredentialsError,
    ) as exc:
        return AwsResult(operation, code=NO_CREDENTIALS, message=str(exc))
    except botocore.exceptions.BotoCoreError as exc:
        return AwsResult(operation, code=type(exc).__name__, message=str(exc))
    return AwsResult(
        operation,
        response=response,
        date=_date(response.get("ResponseMetadata")),
        local_time=before + (now() - before) / 2,
    )


def trust_allows_ec2(document: object) -> bool | None:
    """Whether a trust policy lets ``ec2.amazonaws.com`` call ``sts:AssumeRole``; None if unknown.

    The trust engine decides (an explicit Deny wins, then an Allow; conditions EC2's request
    cannot meet keep it out); None when the document cannot be read or a condition cannot be
    judged offline.
    """
    if not isinstance(document, Mapping):
        return None
    verdict = explain_policy(document).verdict
    return {"allowed": True, "unknown": None}.get(verdict, False)


def _listed(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def trusted_principals(document: object) -> list[str]:
    """Every principal an Allow statement of a trust policy names, as ``Kind:value``."""
    if not isinstance(document, Mapping):
        return []
    statements = document.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    names: list[str] = []
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if principal == "*":
            names.append("*")
        elif isinstance(principal, Mapping):
            for kind, value in principal.items():
                names.extend(f"{kind}:{item}" for item in _listed(value))
    return names
