"""botocore glue: a credential provider for the instance role, and the helpers that install it.

:class:`IMDSCredentialProvider` takes the place of botocore's own ``iam-role`` provider in a session's
credential chain, under the same ``METHOD`` and ``CANONICAL_NAME``, so the chain's order is kept (env
vars, shared files and container credentials still win) and a profile's ``credential_source =
Ec2InstanceMetadata`` finds it too. What it loads is a botocore ``RefreshableCredentials`` in every
way botocore and boto3 look at one, but its ``get_frozen_credentials()`` -- called by the signer on
every request -- is the refresh engine's lock-free read instead of botocore's ``datetime.now(tzlocal())``
and expiry arithmetic.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import botocore.credentials  # type: ignore[import-untyped,unused-ignore]
import botocore.session  # type: ignore[import-untyped,unused-ignore]

from imdscreds.chain import (
    METHOD,
    NO_ROLE_HERE,
    ContainerProviderBase,
    EngineBackedCredentials,
    InstanceRoleProvider,
    count_imds_credentials,
    is_aio_session,
    replace_container_provider,
    replace_instance_role_provider,
)
from imdscreds.clock import SYSTEM_CLOCK, Clock
from imdscreds.config import IMDSConfig
from imdscreds.container import ContainerCredentialsFetcher
from imdscreds.credentials import RoleCredentials, RoleCredentialsFetcher
from imdscreds.errors import NoInstanceProfileError
from imdscreds.imds import IMDSClient
from imdscreds.policy import RefreshPolicy

__all__ = [
    "ContainerCredentialProvider",
    "IMDSCredentialProvider",
    "IMDSRefreshableCredentials",
    "boto3_session",
    "install",
]

log = logging.getLogger("imdscreds.provider")


class IMDSRefreshableCredentials(
    EngineBackedCredentials,
    botocore.credentials.RefreshableCredentials,  # type: ignore[misc]
):
    """botocore ``RefreshableCredentials`` backed by a :class:`RefreshingCredentials` engine.

    Every accessor botocore and boto3 use (``get_frozen_credentials()``, ``access_key``,
    ``secret_key``, ``token``, ``account_id``, ``refresh_needed()``) reads the engine, which
    refreshes ahead of expiry on its own; nothing here keeps a second copy of the expiry.
    Building one fetches the first credentials (and raises what ``fetch`` raises).
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
        super().__init__(fetch, policy=policy, clock=clock, rng=rng, client=client, method=method)
        self._get()

    @classmethod
    def _unloaded(
        cls,
        fetch: Callable[[], RoleCredentials],
        *,
        policy: RefreshPolicy | None,
        clock: Clock,
        rng: random.Random | None,
        client: IMDSClient,
    ) -> IMDSRefreshableCredentials:
        # For the provider, which keeps one engine across failed loads: its first-fetch backoff
        # then holds for every botocore session and client that asks.
        credentials = cls.__new__(cls)
        EngineBackedCredentials.__init__(
            credentials, fetch, policy=policy, clock=clock, rng=rng, client=client
        )
        return credentials

    def _bind(self) -> None:
        # The signer calls get_frozen_credentials() on every request. Binding the engine's method
        # on the instance makes that call one Python frame, the engine's lock-free read, which
        # hands out the ReadOnlyCredentials built once per fetch; the method below, which says
        # the same, would add a second frame (a third of the cost).
        self.get_frozen_credentials = self._engine.get_view  # type: ignore[method-assign]
        self._get = self._engine.get

    def get_frozen_credentials(self) -> Any:
        """The current key, secret, token (and account id) as botocore's ``ReadOnlyCredentials``."""
        return self._engine.get_view()

    @property
    def access_key(self) -> str:
        """The access key id (prefer ``get_frozen_credentials()``: it cannot mix two sets)."""
        return self._get().access_key_id

    @property
    def secret_key(self) -> str:
        """The secret access key (prefer ``get_frozen_credentials()``)."""
        return self._get().secret_access_key

    @property
    def token(self) -> str:
        """The session token (prefer ``get_frozen_credentials()``)."""
        return self._get().token

    @property
    def account_id(self) -> str | None:
        """The account id, when IMDS's extended credentials endpoint gave one."""
        return self._get().account_id

    @property
    def _expiry_time(self) -> Any:
        # Kept for code that reads botocore's private attribute; the engine owns the deadline.
        return self._get().expiration

    def _refresh(self) -> None:
        self._get()

    def _protected_refresh(self, is_mandatory: bool) -> None:
        self._get()


class IMDSCredentialProvider(InstanceRoleProvider):
    """The instance role's credentials for botocore: IMDSv2, refreshed ahead of expiry.

    ``config`` is resolved at the first :meth:`load` when not given (from the environment and the
    session's profile, see :class:`IMDSConfig`); ``policy`` is checked here, eagerly.
    """

    _credentials: IMDSRefreshableCredentials | None
    # Built at the first load and kept while its first fetch fails, so that its backoff spans
    # loads: a chain asked again at once gets the same answer without a request.
    _pending: IMDSRefreshableCredentials | None = None

    def load(self) -> IMDSRefreshableCredentials | None:
        """The instance role's credentials, or None when there is no instance role here.

        Raises our error, with its hint, for anything else: a trust policy that does not let EC2
        assume the role, a setting that is invalid, a token IMDS will not give.
        """
        if self._credentials is not None:
            return self._credentials  # every session sharing this provider shares one engine
        config = self._resolve_config()
        if config.disabled:
            log.debug("IMDS is disabled (%s); no instance role credentials.", config.sources)
            return None
        credentials = self._pending
        if credentials is None:
            client = IMDSClient(config, clock=self._clock)
            credentials = self._pending = IMDSRefreshableCredentials._unloaded(
                RoleCredentialsFetcher(client).fetch,
                policy=self.policy,
                clock=self._clock,
                rng=self._rng,
                client=client,
            )
        try:
            credentials._get()
        except NO_ROLE_HERE as exc:
            # botocore's chain ends in "Unable to locate credentials" after this: say why. On EC2
            # without a profile that is a WARNING; off EC2 (no IMDS at all) it is routine.
            level = logging.WARNING if isinstance(exc, NoInstanceProfileError) else logging.INFO
            log.log(level, "No instance role credentials: %s", exc)
            return None
        self._pending = None
        count_imds_credentials()
        role = credentials.engine.peek()
        log.info("Found credentials from the instance role %s.", role.role_name if role else "?")
        self._credentials = credentials
        return credentials


class ContainerCredentialProvider(ContainerProviderBase):
    """Container credentials (``imdscreds serve``, EKS Pod Identity) through the refresh engine,
    in place of botocore's ``container-role`` provider (see :class:`ContainerProviderBase`)."""

    def load(self) -> Any:
        """The endpoint's credentials; raises our error, with its hint, when it gives none."""
        if self._credentials is not None:
            return self._credentials
        endpoint = self._endpoint()
        if endpoint is None:
            return None if self._replaced is None else self._replaced.load()
        fetcher = ContainerCredentialsFetcher(endpoint, clock=self._clock)
        try:
            credentials = IMDSRefreshableCredentials(
                fetcher.fetch,
                policy=self.policy,
                clock=self._clock,
                client=fetcher,
                method=self.METHOD,
            )
        except BaseException:
            fetcher.close()
            raise
        log.info("Found credentials from the container-credentials endpoint %s.", endpoint.url)
        self._credentials = credentials
        return credentials


def install(
    session: Any = None,
    *,
    imds_config: IMDSConfig | None = None,
    policy: RefreshPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> IMDSCredentialProvider:
    """Put an :class:`IMDSCredentialProvider` in ``session``'s credential chain, for ``iam-role``.

    ``session`` is a botocore or a boto3 ``Session``; None means boto3's default session (the one
    ``boto3.client()`` uses). Call it before the session loads credentials (before the first
    client): a session keeps the credentials it has loaded.
    """
    core = _botocore_session(session)
    provider = IMDSCredentialProvider(imds_config, policy=policy, clock=clock, session=core)
    replace_instance_role_provider(core, provider, caller="imdscreds.install()")
    replace_container_provider(
        core, lambda replaced: ContainerCredentialProvider(replaced, policy=policy, clock=clock)
    )
    return provider


def _botocore_session(session: Any) -> Any:
    if session is None:
        boto3 = _import_boto3("imdscreds.install() without a session")
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
    # A boto3.Session keeps its botocore session here; boto3 has no public accessor for it.
    inner = getattr(session, "_session", None)
    for core in (session, inner):
        if is_aio_session(core):
            # An AioSession is a botocore Session too, but its chain awaits load() and
            # get_frozen_credentials(): a sync provider would fail every credential load later.
            raise TypeError(
                f"imdscreds.install() cannot serve {type(session).__name__}: aiobotocore awaits "
                "its credentials, and these are synchronous. Use imdscreds.aio.install(session) "
                "instead (pip install 'imdscreds[aio]')."
            )
    if isinstance(session, botocore.session.Session):
        return session
    if isinstance(inner, botocore.session.Session):
        return inner
    raise TypeError(f"install() needs a botocore or boto3 Session, not {session!r}")


def _import_boto3(needed_by: str) -> Any:
    try:
        import boto3  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise ImportError(
            f"{needed_by} needs boto3, which is not installed: pip install 'imdscreds[boto3]'"
        ) from exc
    return boto3


def boto3_session(
    *,
    imds_config: IMDSConfig | None = None,
    policy: RefreshPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
    **kwargs: Any,
) -> Any:
    """A new ``boto3.Session`` whose instance-role credentials come from imdscreds.

    ``kwargs`` go to ``boto3.Session`` (``region_name``, ``profile_name``, ...); explicit keys
    there, env vars, shared files and container credentials still come first, as usual.
    """
    boto3 = _import_boto3("imdscreds.boto3_session()")
    core = botocore.session.Session()
    # boto3 applies profile_name and the rest to the botocore session first, so that the chain
    # install() edits is the one for that profile.
    session = boto3.Session(botocore_session=core, **kwargs)
    install(core, imds_config=imds_config, policy=policy, clock=clock)
    return session
