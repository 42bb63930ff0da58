"""The bodies ``FakeIMDS`` sends: credential material, JSON documents as IMDS formats them, error pages."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from http import HTTPStatus
from typing import Any

from imdscreds.credentials import format_timestamp
from imdscreds.testing import _metadata as metadata

__all__ = [
    "code_document",
    "credentials_document",
    "derive_credentials",
    "error_page",
    "identity_document",
    "imds_json",
    "info_document",
    "instance_profile_id",
    "profile_not_found_document",
    "trust_policy_document",
]

_TROUBLESHOOTING_URL = (
    "http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html"
)


def imds_json(document: dict[str, Any]) -> bytes:
    """JSON pretty-printed the way IMDS does it: two-space indent and ``"Key" : "value"``."""
    return json.dumps(document, indent=2, separators=(",", " : ")).encode()


def _derive(salt: bytes, label: str, index: int, size: int) -> bytes:
    return hashlib.shake_256(salt + label.encode() + index.to_bytes(8, "big")).digest(size)


def derive_credentials(salt: bytes, index: int) -> tuple[str, str, str]:
    """Access key id, secret key and session token for set ``index``.

    Stable for one salt and index, unguessable without the salt (a fresh random one per fake), so a
    test that finds one of them in a log has found a real leak, not a coincidence.
    """
    # 10 bytes of base32 are exactly 16 characters of A-Z2-7: "ASIA" plus 16 makes a real-looking
    # temporary access key id; 30 bytes of base64 are the 40 characters of a secret key.
    access_key_id = "ASIA" + base64.b32encode(_derive(salt, "access-key-id", index, 10)).decode()
    secret_access_key = base64.b64encode(_derive(salt, "secret-access-key", index, 30)).decode()
    token = base64.b64encode(_derive(salt, "session-token", index, 225)).decode()
    return access_key_id, secret_access_key, token


def instance_profile_id(account_id: str, role_name: str) -> str:
    """A stable ``AIPA`` + 17 character id for the instance profile named like the role."""
    digest = hashlib.sha256(f"{account_id}/{role_name}".encode()).digest()
    return "AIPA" + base64.b32encode(digest).decode()[:17]


def error_page(status: int) -> bytes:
    """The small XHTML page IMDS sends with an error status (404 most of all)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} - {phrase}"
    return (
        '<?xml version="1.0" encoding="iso-8859-1"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
        '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
        f" <head>\n  <title>{title}</title>\n </head>\n"
        f" <body>\n  <h1>{title}</h1>\n </body>\n"
        "</html>\n"
    ).encode("iso-8859-1")


def credentials_document(
    *,
    access_key_id: str,
    secret_access_key: str,
    token: str,
    last_updated: datetime,
    expiration: datetime,
    account_id: str | None,
) -> bytes:
    """The role credentials document; ``AccountId`` only on the extended path."""
    document: dict[str, Any] = {
        "Code": "Success",
        "LastUpdated": format_timestamp(last_updated),
        "Type": "AWS-HMAC",
        "AccessKeyId": access_key_id,
        "SecretAccessKey": secret_access_key,
        "Token": token,
        "Expiration": format_timestamp(expiration),
    }
    if account_id is not None:
        document["AccountId"] = account_id
    return imds_json(document)


def code_document(code: str, message: str, last_updated: datetime) -> bytes:
    """A 200 document that reports a failure in its ``Code``, as IMDS does for IAM problems."""
    return imds_json(
        {"Code": code, "Message": message, "LastUpdated": format_timestamp(last_updated)}
    )


def trust_policy_document(role_name: str, last_updated: datetime) -> bytes:
    """What IMDS serves when the role's trust policy does not let EC2 assume it."""
    message = (
        f"EC2 cannot assume the role {role_name}.  "
        f"Please see documentation at {_TROUBLESHOOTING_URL}."
    )
    return code_document("AssumeRoleUnauthorizedAccess", message, last_updated)


def profile_not_found_document(account_id: str, role_name: str, last_updated: datetime) -> bytes:
    """What IMDS serves when the instance profile was deleted or replaced."""
    message = (
        f"Instance Profile with Id {instance_profile_id(account_id, role_name)} cannot be found. "
        f"Please see documentation at {_TROUBLESHOOTING_URL}."
    )
    return code_document("InstanceProfileNotFound", message, last_updated)


def info_document(account_id: str, role_name: str, last_updated: datetime) -> bytes:
    """``iam/info`` for a healthy instance profile named like its role."""
    return imds_json(
        {
            "Code": "Success",
            "LastUpdated": format_timestamp(last_updated),
            "InstanceProfileArn": f"arn:aws:iam::{account_id}:instance-profile/{role_name}",
            "InstanceProfileId": instance_profile_id(account_id, role_name),
        }
    )


def identity_document(
    *, account_id: str, instance_id: str, region: str, pending_time: datetime
) -> bytes:
    """The instance identity document (unsigned; the fields are plausible data, nothing more)."""
    return imds_json(
        {
            "accountId": account_id,
            "architecture": "x86_64",
            "availabilityZone": metadata.availability_zone(region),
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": metadata.AMI_ID,
            "instanceId": instance_id,
            "instanceType": metadata.INSTANCE_TYPE,
            "kernelId": None,
            "pendingTime": format_timestamp(pending_time),
            "privateIp": metadata.PRIVATE_IP,
            "ramdiskId": None,
            "region": region,
            "version": "2017-09-30",
        }
    )
