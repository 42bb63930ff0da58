"""The named situations ``FakeIMDS`` can play, each with the one line the CLI shows for it."""

from __future__ import annotations

__all__ = ["SCENARIOS", "SCENARIO_DESCRIPTIONS"]

SCENARIO_DESCRIPTIONS: dict[str, str] = {
    "healthy": (
        "an instance with a role, as EC2 launches one by default: tokens, role lists and "
        "rotating credentials work, and IMDSv1 is still allowed"
    ),
    "no-profile": "no instance profile attached: role lists, credentials and iam/info answer 404",
    "profile-without-role": (
        "an instance profile without a role: role lists 404, iam/info says InvalidInstanceProfile"
    ),
    "trust-policy": (
        "the role's trust policy does not allow EC2: the credentials document is a 200 with "
        "Code AssumeRoleUnauthorizedAccess"
    ),
    "profile-not-found": (
        "the instance profile was deleted or replaced: credentials and iam/info carry Code "
        "InstanceProfileNotFound"
    ),
    "imds-disabled": "the metadata endpoint is turned off: every request answers 403",
    "hop-limit": (
        "a container behind a hop limit of 1: the token PUT never gets an answer, token-less "
        "GETs still work while IMDSv1 is allowed"
    ),
    "outage": "every connection is closed without an answer",
    "blackhole": "every request is read and never answered",
    "server-error": "every request answers 500",
    "throttled": "every request answers 429",
    "malformed": "the credentials document is not JSON",
    "expired": "the credentials served are already expired (Expiration a minute before LastUpdated)",
    "legacy-only": "an older IMDS without the security-credentials-extended paths (404)",
    "v1-disabled": "HttpTokens=required: a GET without a session token answers 401",
    "no-account-id": "extended credentials documents without AccountId",
}

SCENARIOS: tuple[str, ...] = tuple(SCENARIO_DESCRIPTIONS)
