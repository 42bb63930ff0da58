"""What the botocore and aiobotocore glue share: the credential-chain surgery and its pieces.

Both glue modules put an engine-backed provider in a session's chain in place of the SDK's own
``iam-role`` provider, under the same ``METHOD`` and ``CANONICAL_NAME``, so the chain's order is
kept (env vars, shared files and container credentials still win) and a profile's
``credential_source = Ec2InstanceMetadata`` finds it too. The chain is read by duck typing and
only botocore is imported (aiobotocore is botocore underneath), so this module sits below both.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable
from typing import Any

import botocore.credentials  # type: ignore[import-untyped,unused-ignore]

from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.config import IMDSConfig
from imdscreds.container import ContainerCredentialsFetcher, ContainerEndpoint
from imdscreds.credentials import RoleCredentials
from imdscreds.errors import IMDSUnreachableError, MetadataDisabledError, NoInstanceProfileError
from imdscreds.imds import IMDSClient
from imdscreds.policy import RefreshPolicy
from imdscreds.refresh import RefreshingCredentials

__all__ = [
    "CANONICAL_NAME",
    "CONTAINER_METHOD",
    "METHOD",
    "NO_ROLE_HERE",
    "ContainerProviderBase",
    "EngineBackedCredentials",
    "InstanceRoleProvider",
    "count_imds_credentials",
    "imds_config_for",
    "is_aio_session",
    "read_only",
    "replace_container_provider",
    "replace_instance_role_provider",
]

log = logging.getLogger("imdscreds.chain")

METHOD = "iam-role"
CANONICAL_NAME = "Ec2InstanceMetadata"
# What a provider answers with None, so the SDK's chain goes on (and ends in its usual
# NoCredentialsError): no instance role here. Anything else is a misconfiguration worth its hint.
NO_ROLE_HERE = (NoInstanceProfileError, IMDSUnreachableError, MetadataDisabledError)

try:  # botocore >= 1.36 counts credential sources in the User-Agent; older versions do not
    from botocore.useragent import (  # type: ignore[import-untyped,unused-ignore]
        register_feature_id as _register_feature_id,
    )
except ImportError:  # pragma: no cover - depends on the installed botocore
    _register_feature_id = None

_ReadOnlyCredentials = botocore.credentials.ReadOnlyCredentials
# botocore added account_id to ReadOnlyCredentials in 1.36; the project supports older ones too.
_WITH_ACCOUNT_ID = "account_id" in _ReadOnlyCredentials._fields


def read_only(credentials: RoleCredentials) -> Any:
    """``credentials`` as botocore's ``ReadOnlyCredentials``: what the signer is handed."""
    if _WITH_ACCOUNT_ID:
        return _ReadOnlyCredentials(
            credentials.access_key_id,
            credentials.secret_access_key,
            credentials.token,
            credentials.account_id,
        )
    return _ReadOnlyCredentials(
        credentials.access_key_id, credentials.secret_access_key, credentials.token
    )


def count_imds_credentials() -> None:
    """Record the IMDS credential source for botocore's User-Agent, as its own provider does."""
    if _register_feature_id is not None:
        _register_feature_id("CREDENTIALS_IMDS")


def replace_instance_role_provider(session: Any, provider: Any, *, caller: str) -> None:
    """Put ``provider`` in ``session``'s credential chain where the ``iam-role`` provider was.

    ``session`` is a botocore (or aiobotocore) session; ``caller`` names the public function for
    the error message when the chain is not the SDK's own resolver.
    """
    resolver = session.get_component("credential_provider")
    providers = getattr(resolver, "providers", None)
    if not isinstance(providers, list):
        raise TypeError(
            f"The session's credential_provider component is {resolver!r}, not botocore's "
            f"CredentialResolver; {caller} cannot add to it."
        )
    for index, existing in enumerate(providers):
        if getattr(existing, "METHOD", None) == METHOD:
            providers[index] = provider
            break
    else:
        # Someone took iam-role out of the chain; installing is an explicit request to have it.
        providers.append(provider)
    _source_credentials_from(providers, provider)


CONTAINER_METHOD = "container-role"


class ContainerProviderBase(botocore.credentials.CredentialProvider):  # type: ignore[misc]
    """What the engine-backed ``container-role`` providers of both glue modules share.

    They take the place of the SDK's ``container-role`` provider when
    ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` are set
    (``imdscreds serve``, EKS Pod Identity), so a process under a broker keeps the lock-free read and
    static stability; without the two variables at ``load()`` they defer to the provider they
    replaced (ECS's relative URI, say).
    """

    METHOD = CONTAINER_METHOD
    CANONICAL_NAME = "EcsContainer"
    ENGINE_BACKED = True

    def __init__(
        self,
        replaced: Any = None,
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        environ: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._replaced = replaced
        self.policy = RefreshPolicy() if policy is None else policy
        self._clock = clock
        self._environ = environ
        self._credentials: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(loaded={self._credentials is not None})"

    def _endpoint(self) -> ContainerEndpoint | None:
        return ContainerEndpoint.from_environ(self._environ)


def replace_container_provider(session: Any, make: Callable[[Any], Any]) -> None:
    """With the broker's two variables set, put ``make(replaced)`` where ``container-role`` was.

    Without them the SDK's own provider stays (ECS's relative URI is its business), and a chain
    already holding one of ours is left alone.
    """
    if ContainerEndpoint.from_environ() is None:
        return
    providers = session.get_component("credential_provider").providers
    for index, existing in enumerate(providers):
        if getattr(existing, "METHOD", None) == CONTAINER_METHOD:
            if not getattr(existing, "ENGINE_BACKED", False):
                providers[index] = make(existing)
            return


def _source_credentials_from(providers: list[Any], provider: Any) -> None:
    """Make ``credential_source = Ec2InstanceMetadata`` in a profile use ``provider`` too.

    The SDK's AssumeRoleProvider looks the source up by CANONICAL_NAME in a list of its own (in
    its CanonicalNameCredentialSourcer), not in the resolver's chain, and offers no public way to
    change it; so that list is edited in place. If the SDK ever moves it, profiles with
    credential_source keep the SDK's own IMDS provider, and this says so in the DEBUG log.
    """
    found = False
    for candidate in providers:
        sourcer = getattr(candidate, "_credential_sourcer", None)
        sources = getattr(sourcer, "_providers", None)
        if not isinstance(sources, list):
            continue
        for index, source in enumerate(sources):
            if getattr(source, "CANONICAL_NAME", None) == CANONICAL_NAME:
                sources[index] = provider
                found = True
    if not found:
        log.debug(
            "No credential_source lookup for %s found in the chain; profiles that name it as "
            "credential_source use the SDK's own provider.",
            CANONICAL_NAME,
        )


def imds_config_for(session: Any) -> IMDSConfig:
    """The IMDS settings for ``session`` (a botocore session, or None): its profile selects the
    ``~/.aws/config`` section, as it does for the SDK's own IMDS settings."""
    profile = config_file = None
    if session is not None:
        profile = session.get_config_variable("profile")
        config_file = session.instance_variables().get("config_file")
    return IMDSConfig.resolve(profile=profile, config_file=config_file)


def is_aio_session(session: Any) -> bool:
    """Whether ``session`` is an aiobotocore ``AioSession``, without importing aiobotocore.

    Nobody can hold an AioSession unless aiobotocore has been imported, so looking it up in
    ``sys.modules`` is enough, and a process without aiobotocore pays nothing.
    """
    module = sys.modules.get("aiobotocore.session")
    aio_session = getattr(module, "AioSession", None)
    return aio_session is not None and isinstance(session, aio_session)


class InstanceRoleProvider(botocore.credentials.CredentialProvider):  # type: ignore[misc]
    """What the providers of both glue modules share: their name in the chain and settings.

    ``config`` is resolved at the first ``load()`` when not given (from the environment and the
    session's profile, see :class:`IMDSConfig`); ``policy`` is checked here, eagerly.
    """

    METHOD = METHOD
    CANONICAL_NAME = CANONICAL_NAME

    def __init__(
        self,
        config: IMDSConfig | None = None,
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        session: Any = None,
    ) -> None:
        super().__init__(session=session)
        if config is not None and not isinstance(config, IMDSConfig):
            raise TypeError(f"config must be an IMDSConfig, not {config!r}")
        if policy is not None and not isinstance(policy, RefreshPolicy):
            raise TypeError(f"policy must be a RefreshPolicy, not {policy!r}")
        self.config = config
        self.policy = RefreshPolicy() if policy is None else policy
        self._clock = clock
        self._rng = rng
        self._credentials: Any = None

    def __repr__(self) -> str:
        where = "not resolved yet" if self.config is None else self.config.endpoint
        loaded = self._credentials is not None
        return f"{type(self).__name__}(endpoint={where!r}, loaded={loaded})"

    def _resolve_config(self) -> IMDSConfig:
        if self.config is None:
            # The session's profile (boto3.Session(profile_name=...) or AWS_PROFILE) selects the
            # ~/.aws/config section, as it does for the SDK's own IMDS settings.
            self.config = imds_config_for(self.session)
        return self.config


class EngineBackedCredentials:
    """What the SDK credentials classes of both glue modules read off their engine.

    Mixed in before the SDK's class, so these win over its expiry arithmetic: nothing here keeps a
    second copy of the expiry. The SDK class's ``__init__`` is deliberately not called: it would
    set up an expiry time, a lock and a time fetcher of its own, all of which the engine replaces.
    """

    def __init__(
        self,
        fetch: Callable[[], RoleCredentials],
        *,
        policy: RefreshPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        client: IMDSClient | ContainerCredentialsFetcher | None = None,
        method: str = METHOD,
    ) -> None:
        self.method = method
        self._engine = RefreshingCredentials(
            fetch, policy=policy, clock=clock, rng=rng, view=read_only
        )
        self._client = client
        self._bind()

    def _bind(self) -> None:
        """Set up the subclass's reads on ``_engine``; called at the end of ``__init__``."""

    def __repr__(self) -> str:
        name = type(self).__name__
        current = self._engine.peek()
        left = self._engine.expires_in()
        if current is None or left is None:
            return f"{name}(no credentials yet)"
        return (
            f"{name}(method={self.method!r}, access_key_id={current.access_key_id!r}, "
            f"role_name={current.role_name!r}, expires_in={left:.0f}s)"
        )

    @property
    def engine(self) -> RefreshingCredentials[Any]:
        """The refresh engine behind these credentials (``peek()``, ``expires_in()``, ...)."""
        return self._engine

    def refresh_needed(self, refresh_in: float | None = None) -> bool:
        """botocore's question: expire within ``refresh_in`` seconds? Default: is a refresh due?"""
        if refresh_in is None:
            return self._engine.refresh_due()
        left = self._engine.expires_in()
        return left is None or left < refresh_in

    def _seconds_remaining(self) -> float:
        left = self._engine.expires_in()
        return 0.0 if left is None else left

    def _is_expired(self) -> bool:
        return self.refresh_needed(0)

    def _normalize(self) -> None:
        """IMDS's values are already ``str``; botocore's normalisation has nothing to do."""

    @classmethod
    def create_from_metadata(cls, *args: object, **kwargs: object) -> Any:
        raise TypeError(
            f"{cls.__name__} come from their credential provider's load(), not from metadata."
        )

    def close(self) -> None:
        """Stop the prefetch thread, if any, and close the IMDS connection."""
        self._engine.close()
        if self._client is not None:
            self._client.close()
