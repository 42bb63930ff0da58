"""The exceptions imdscreds raises, one tree.

Every message names the cause and the next step (the ``hint``); none carries a secret key or a
session token, and every one is printable: text from IMDS quoted in it cannot reach a terminal as an
escape sequence, however the message was built. Callers catch by type::

    IMDSCredsError                      anything imdscreds raises
    ├── ConfigError                     a setting is invalid: names the value, its source, what is valid
    ├── MetadataDisabledError           AWS_EC2_METADATA_DISABLED / disable_ec2_metadata says never call IMDS
    ├── ContainerCredentialsError       AWS_CONTAINER_CREDENTIALS_FULL_URI (imdscreds serve, EKS Pod Identity) gave none
    │   ├── TokenFileError              the token file cannot be read or its content cannot be sent as a header
    │   └── EndpointOwnerError          a loopback endpoint's port is held by another user than the token file's
    └── IMDSError                       talking to IMDS failed
        ├── IMDSUnreachableError        no IMDS here: connection refused, or no connection in time
        ├── IMDSDisabledError           IMDS answered 403: the instance's metadata endpoint is turned off
        ├── TokenError                  the IMDSv2 session token could not be had (hop limit, 400, 405 ...)
        ├── IMDSHTTPError               an unexpected HTTP status (5xx or 429 after retries, ...); .status
        │   └── IMDSNotFoundError       404 on a path that must exist
        ├── MalformedResponseError      a body that is not what IMDS sends (JSON, fields, size, UTF-8)
        └── CredentialsError            IMDS answered, but gave no usable role credentials
            ├── NoInstanceProfileError  no instance profile (no role) is attached to the instance
            ├── RoleNotFoundError       the configured role name exists on neither credentials path
            └── IMDSCodeError           the credentials document has a Code other than "Success"; .code
                └── TrustPolicyError    AssumeRoleUnauthorizedAccess: the role's trust policy denies EC2
"""

from __future__ import annotations

from imdscreds.untrusted import printable

__all__ = [
    "ConfigError",
    "ContainerCredentialsError",
    "CredentialsError",
    "EndpointOwnerError",
    "IMDSCodeError",
    "IMDSCredsError",
    "IMDSDisabledError",
    "IMDSError",
    "IMDSHTTPError",
    "IMDSNotFoundError",
    "IMDSUnreachableError",
    "MalformedResponseError",
    "MetadataDisabledError",
    "NoInstanceProfileError",
    "RoleNotFoundError",
    "TokenError",
    "TokenFileError",
    "TrustPolicyError",
]


class IMDSCredsError(Exception):
    """Base of every error imdscreds raises: a cause, and a hint that says what to do next."""

    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = printable(message)
        self.hint = printable(self.default_hint if hint is None else hint)
        super().__init__(f"{self.message} {self.hint}".strip() if self.hint else self.message)


class ConfigError(IMDSCredsError):
    """A configuration value is invalid; the message names the value, its source and what is valid."""

    def __init__(
        self,
        message: str,
        *,
        setting: str | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.setting = setting
        self.source = source
        super().__init__(message, hint=hint)


class MetadataDisabledError(IMDSCredsError):
    """Configuration forbids calling IMDS (AWS_EC2_METADATA_DISABLED or disable_ec2_metadata)."""

    default_hint = (
        "Unset AWS_EC2_METADATA_DISABLED (or disable_ec2_metadata in ~/.aws/config) to use the "
        "instance role."
    )


class IMDSError(IMDSCredsError):
    """Talking to the instance metadata service failed."""


class IMDSUnreachableError(IMDSError):
    """No instance metadata service answered: connection refused, unreachable, or timed out."""

    default_hint = (
        "Is this an EC2 instance? Off EC2 there is no IMDS; on EC2 check that a firewall or iptables "
        "rule does not block 169.254.169.254, and run `imdscreds doctor`."
    )


class IMDSDisabledError(IMDSError):
    """IMDS answered 403: the metadata endpoint is turned off for this instance."""

    default_hint = (
        "Turn the metadata endpoint on: `aws ec2 modify-instance-metadata-options --instance-id ID "
        '--http-endpoint enabled` (Terraform: metadata_options { http_endpoint = "enabled" }).'
    )


class TokenError(IMDSError):
    """The IMDSv2 session token could not be obtained."""


class IMDSHTTPError(IMDSError):
    """IMDS answered with an HTTP status that imdscreds cannot use."""

    def __init__(self, message: str, *, status: int, path: str, hint: str | None = None) -> None:
        self.status = status
        self.path = path
        super().__init__(message, hint=hint)


class IMDSNotFoundError(IMDSHTTPError):
    """IMDS answered 404 for a path."""


class MalformedResponseError(IMDSError):
    """IMDS sent a body that cannot be understood."""

    default_hint = (
        "This is not what IMDS sends; check that nothing (a proxy, a local agent) answers in its place "
        "at the configured endpoint."
    )


class CredentialsError(IMDSError):
    """IMDS answered, but gave no usable role credentials."""


class NoInstanceProfileError(CredentialsError):
    """No instance profile, and so no role, is attached to this instance."""

    default_hint = (
        "Attach an instance profile with a role: console EC2 > Instance > Actions > Security > "
        "Modify IAM role; CLI `aws ec2 associate-iam-instance-profile --instance-id ID "
        "--iam-instance-profile Name=PROFILE`; Terraform aws_iam_instance_profile and the instance's "
        "iam_instance_profile."
    )


class RoleNotFoundError(CredentialsError):
    """The configured role name exists on neither credentials path."""

    def __init__(self, message: str, *, role_name: str, hint: str | None = None) -> None:
        self.role_name = role_name
        super().__init__(message, hint=hint)


class IMDSCodeError(CredentialsError):
    """The credentials document carried a Code other than "Success"; IMDS's message is kept."""

    def __init__(
        self, message: str, *, code: str, imds_message: str | None, hint: str | None = None
    ) -> None:
        self.code = code
        self.imds_message = imds_message
        super().__init__(message, hint=hint)


class TrustPolicyError(IMDSCodeError):
    """AssumeRoleUnauthorizedAccess: the role's trust policy does not let EC2 assume the role."""

    default_hint = (
        "Let EC2 assume the role: its trust policy needs a statement with "
        '"Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole" '
        "(Terraform: aws_iam_role.assume_role_policy). New credentials appear at IMDS's next "
        "refresh; `imdscreds doctor` shows the full fix."
    )


class ContainerCredentialsError(IMDSCredsError):
    """A container-credentials endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI``) gave no credentials.

    ``status`` is the HTTP status (None when nothing answered); ``code`` the ``Code`` the endpoint
    sent with its refusal, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        super().__init__(message, hint=hint)


class TokenFileError(ContainerCredentialsError):
    """The container-credentials token file cannot be read, or holds what no header can carry.

    The message names the file and the cause, never the file's content.
    """


class EndpointOwnerError(ContainerCredentialsError):
    """A loopback container-credentials endpoint is served by another user than the token's owner.

    Someone else took the broker's port (it died, or never started): the token was not sent.
    ``port`` is the endpoint's port, ``listener_uids`` the uids listening there, ``token_uid`` the
    token file's owner.
    """

    def __init__(
        self, message: str, *, port: int, listener_uids: tuple[int, ...], token_uid: int, hint: str
    ) -> None:
        self.port = port
        self.listener_uids = listener_uids
        self.token_uid = token_uid
        super().__init__(message, hint=hint)
