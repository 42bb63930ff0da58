"""The container-credentials fetch: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + a token file.

Every AWS SDK reads credentials from such an endpoint (``imdscreds serve``, EKS Pod Identity, the
ECS agent): a GET with the token as the ``Authorization`` header, answered with ``AccessKeyId``,
``SecretAccessKey``, ``Token``, ``Expiration`` and, sometimes, ``AccountId``. This module is the
fetch alone (no cache, no refresh): the glue modules put the refresh engine on top of it.

As botocore does: the URL must be HTTPS or a loopback / container-agent address (credentials
never travel in clear text across a network); the token file is re-read on every fetch (the
issuer rotates it) and a CR or LF in it is refused (it would split the header).

Beyond botocore: the token file is read with a bound (a regular file of at most
``MAX_TOKEN_BYTES``; a token that cannot be a header value is refused with no echo of it), and,
on Linux, before the token goes to a loopback endpoint, the socket listening on that port must
belong to the token file's owner (or root, as a systemd socket does): another local user who took
the port of a dead broker gets neither the token nor the chance to hand out its own credentials.
Where ``/proc/net/tcp`` cannot be read (not Linux), that check is skipped.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests

from imdscreds._listeners import listener_uids
from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.credentials import RoleCredentials, parse_document, parse_timestamp
from imdscreds.errors import (
    ConfigError,
    ContainerCredentialsError,
    EndpointOwnerError,
    MalformedResponseError,
    TokenFileError,
)
from imdscreds.transport import Dropped, NoAnswer, Unreachable, new_session, send
from imdscreds.untrusted import is_header_safe, printable

__all__ = [
    "ENV_FULL_URI",
    "ENV_TOKEN_FILE",
    "ContainerCredentialsFetcher",
    "ContainerEndpoint",
    "parse_container_credentials",
]

ENV_FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
ENV_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105 - a variable name
# The hosts botocore accepts over plain HTTP besides loopback: the ECS and EKS Pod Identity agents.
_AGENT_HOSTS = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"})
# botocore's ContainerMetadataFetcher: 2 s per attempt, 3 attempts.
DEFAULT_TIMEOUT = 2.0
DEFAULT_ATTEMPTS = 3
_RETRY_PAUSE = 0.2
# The most of an endpoint's refusal message that an error quotes.
_MESSAGE_LIMIT = 500
_REQUIRED = ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")
# A token is a few hundred bytes (EKS Pod Identity's JWT about 1 KiB); a file larger is not one.
MAX_TOKEN_BYTES = 8 * 1024
_PEER = "The container-credentials endpoint"
ROLE_LABEL = "container-credentials"
"""What ``RoleCredentials.role_name`` says for credentials from such an endpoint (it names no role)."""


@dataclass(frozen=True)
class ContainerEndpoint:
    """Where to fetch and which file holds the token; checked when built."""

    url: str
    token_file: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise ConfigError(
                f"`{self.url}` is not a valid {ENV_FULL_URI}; expected http(s)://HOST[:PORT]/PATH.",
                setting=ENV_FULL_URI,
                source="env",
                hint=f"Set {ENV_FULL_URI} to the URL `imdscreds serve --print-env` prints.",
            )
        if parts.scheme == "http" and not _local_host(host):
            raise ConfigError(
                f"`{self.url}` ({ENV_FULL_URI}) is plain HTTP to {host}, which is neither loopback "
                "nor a container agent; credentials would cross the network in clear text.",
                setting=ENV_FULL_URI,
                source="env",
                hint="Use https://, a loopback address (127.0.0.1, ::1), or the agent's address.",
            )
        if not self.token_file:
            raise ConfigError(
                f"{ENV_TOKEN_FILE} is empty.",
                setting=ENV_TOKEN_FILE,
                source="env",
                hint=f"Set {ENV_TOKEN_FILE} to the token file `imdscreds serve --print-env` prints.",
            )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ContainerEndpoint | None:
        """The endpoint the two variables name; None unless both are set."""
        env = os.environ if environ is None else environ
        url, token_file = env.get(ENV_FULL_URI), env.get(ENV_TOKEN_FILE)
        if url is None or token_file is None:
            return None
        return cls(url, token_file)


def _local_host(host: str) -> bool:
    if host.lower() in _AGENT_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def parse_container_credentials(
    body: bytes, url: str, server_time: datetime | None = None
) -> RoleCredentials:
    """The endpoint's JSON document as ``RoleCredentials``; strict, and no secret in any error.

    ``server_time`` is the answer's ``Date``: the engine judges the Expiration by that clock.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponseError(
            f"The container-credentials endpoint {url} answered with bytes that are not UTF-8.",
            hint=f"Check that {ENV_FULL_URI} points at a credentials endpoint.",
        ) from None
    doc = parse_document(text, f"The answer of the container-credentials endpoint {url}")
    missing = [name for name in _REQUIRED if not isinstance(doc.get(name), str) or not doc[name]]
    if missing:
        raise MalformedResponseError(f"The credentials from {url} lack {', '.join(missing)}.")
    # Both go out in headers of every signed request; the document's text is never quoted.
    unsendable = [name for name in ("AccessKeyId", "Token") if not is_header_safe(doc[name])]
    if unsendable:
        raise MalformedResponseError(
            f"The credentials from {url} have a {' and '.join(unsendable)} that cannot be sent "
            "as an HTTP header (not visible ASCII)."
        )
    account_id = doc.get("AccountId")
    return RoleCredentials(
        access_key_id=doc["AccessKeyId"],
        secret_access_key=doc["SecretAccessKey"],
        token=doc["Token"],
        expiration=parse_timestamp(doc["Expiration"], "Expiration"),
        role_name=ROLE_LABEL,
        account_id=account_id if isinstance(account_id, str) and account_id else None,
        server_time=server_time,
    )


class ContainerCredentialsFetcher:
    """One uncached fetch per :meth:`fetch`; safe to share between threads."""

    def __init__(
        self,
        endpoint: ContainerEndpoint,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        clock: Clock = SYSTEM_CLOCK,
        session: requests.Session | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.endpoint = endpoint
        self._timeout = timeout
        self._attempts = attempts
        self._clock = clock
        self._own_session = session is None
        self._session = new_session() if session is None else session
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ContainerCredentialsFetcher(url={self.endpoint.url!r})"

    def close(self) -> None:
        """Close the pooled connection (only a session the fetcher created itself)."""
        if self._own_session:
            self._session.close()

    def fetch(self) -> RoleCredentials:
        """Fetch once (with retries on no answer, 429 and 5xx); raise our error otherwise."""
        url = self.endpoint.url
        token, owner = self._token()
        headers = {"Authorization": token, "Accept": "application/json"}
        failure = "no attempt made"
        with self._lock:
            for attempt in range(self._attempts):
                if attempt:
                    self._clock.sleep(_RETRY_PAUSE * attempt)
                _check_listener(url, self.endpoint.token_file, owner)
                try:
                    raw = send(
                        self._session,
                        "GET",
                        url,
                        headers,
                        timeout=self._timeout,
                        label=f"GET {url}",
                        peer=_PEER,
                    )
                except (Unreachable, NoAnswer, Dropped) as exc:
                    failure = str(exc)
                    continue
                if raw.status == 200:
                    return parse_container_credentials(raw.body, url, raw.date)
                error = _refusal(raw.status, raw.body, url)
                if raw.status != 429 and raw.status < 500:
                    raise error
                failure = error.message
        raise ContainerCredentialsError(
            f"The container-credentials endpoint {url} ({ENV_FULL_URI}) gave no credentials "
            f"after {self._attempts} attempt(s): {failure}.",
            hint="Is the credentials broker running (`imdscreds serve`, or the agent)? "
            "`systemctl status imdscreds` or its log says why.",
        )

    def _token(self) -> tuple[str, int]:
        """The token, and the uid that owns its file."""
        path = self.endpoint.token_file
        try:
            # O_NONBLOCK: a FIFO planted there must not hang the fetch before the type check.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise TokenFileError(
                f"Cannot read the token file {path} ({ENV_TOKEN_FILE}): {exc.strerror or exc}.",
                hint="Run as a user who may read it (`imdscreds serve --group NAME` lets a group "
                "read it), or point the variable at the file the broker wrote.",
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _token_error(path, "is not a regular file")
            data = os.read(fd, MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise _token_error(path, f"cannot be read ({exc.strerror or exc})") from None
        finally:
            os.close(fd)
        if len(data) > MAX_TOKEN_BYTES:
            raise _token_error(path, f"is larger than {MAX_TOKEN_BYTES} bytes")
        if b"\r" in data or b"\n" in data:
            raise _token_error(
                path,
                "holds a CR or LF, which an HTTP header cannot carry",
                hint="Write the token without a trailing newline (`printf %s TOKEN > FILE`).",
            )
        token = data.decode("latin-1")
        if not token:
            raise _token_error(path, "is empty")
        if not (token.isascii() and token.isprintable()) or token != token.strip():
            raise _token_error(
                path,
                "holds characters an HTTP header cannot carry as they are (not printable "
                "ASCII, or a leading or trailing space)",
            )
        return token, info.st_uid


def _token_error(path: str, why: str, *, hint: str | None = None) -> TokenFileError:
    # The content is never quoted: it is the secret.
    return TokenFileError(
        f"The token file {path} ({ENV_TOKEN_FILE}) {why}.",
        hint=hint
        or "Point the variable at the file `imdscreds serve` wrote (`--print-env` shows it), or "
        "rewrite the token as printable ASCII with no newline.",
    )


def _check_listener(url: str, token_file: str, owner: int) -> None:
    """Refuse to send the token to a loopback port that another user than ``owner`` holds."""
    parts = urlsplit(url)
    host = (parts.hostname or "").split("%", 1)[0]
    if host.lower() == "localhost":
        hosts = ["127.0.0.1", "::1"]
    else:
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return  # an agent's address or HTTPS: not a port a local user can take
        except ValueError:
            return
        hosts = [host]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found: set[int] = set()
    for name in hosts:
        uids = listener_uids(name, port)
        if uids is None:
            return  # no /proc/net/tcp here: nothing to check with
        found |= uids
    strangers = sorted(found - {owner, 0})
    if strangers:
        raise EndpointOwnerError(
            f"{_PEER} {url} ({ENV_FULL_URI}): port {port} is held by uid "
            f"{', '.join(map(str, strangers))}, not by uid {owner} that owns the token file "
            f"{token_file}; the token was not sent and no credentials were taken from it.",
            port=port,
            listener_uids=tuple(strangers),
            token_uid=owner,
            hint="Another local user took the broker's port (the broker died or has not "
            "started). Stop that process, restart the broker (`systemctl restart imdscreds`), and "
            "run it from a systemd socket (examples/imdscreds.socket) so the port is never free.",
        )


def _refusal(status: int, body: bytes, url: str) -> ContainerCredentialsError:
    """The endpoint's refusal, with its Code and Message made printable (they come from outside)."""
    try:
        fields = parse_document(body.decode("utf-8", "replace"), url)
    except MalformedResponseError:
        fields = {}
    code, message, hint = (
        value if isinstance(value, str) and value else None
        for value in (fields.get("Code"), fields.get("Message"), fields.get("Hint"))
    )
    said = f" ({_printable(code)})" if code else ""
    text = f": {_printable(message)}" if message else "."
    return ContainerCredentialsError(
        f"The container-credentials endpoint {url} answered {status}{said}{text}",
        status=status,
        code=code,
        hint=_printable(hint)
        if hint
        else "`imdscreds serve`'s log, or the agent's, says why; check the token file.",
    )


def _printable(text: str) -> str:
    return printable(text, limit=_MESSAGE_LIMIT)
