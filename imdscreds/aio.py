"""aiobotocore glue: the refresh engine behind ``async`` credential reads, for aiobotocore, aioboto3
and s3fs (``pip install 'imdscreds[aio]'``).

:func:`install` puts an :class:`AioIMDSCredentialProvider` in an ``AioSession``'s chain where
aiobotocore's own ``iam-role`` provider was. What it loads is an aiobotocore
``AioRefreshableCredentials`` in every way aiobotocore looks at one (``await
get_frozen_credentials()``, ``await get_account_id()``, ``get_deferred_property()``, ``method``),
backed by the same engine as the botocore glue:

- The read the signer awaits on every request is the engine's lock-free snapshot while no refresh
  is due: no lock, no datetime, no I/O.
- When one is due, the blocking IMDS request runs in a thread of its own, never on the event loop.
  Every caller -- any task, in any thread's loop -- shares that one refresh: the engine's own
  ``threading.Lock`` makes it single flight, and callers wait on a ``concurrent.futures.Future``,
  which belongs to no loop. aiobotocore's ``asyncio.Lock`` binds to the first loop that contends
  it, so a session used from a second ``asyncio.run()`` or another thread's loop fails there.
- Who waits is the engine's rule: in the advisory window, or while IMDS is down, callers get the
  current credentials at once while the refresh goes on; from the mandatory window on they wait
  for it. Static stability and backoff are the engine's, unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

try:
    import aiobotocore.credentials  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "imdscreds.aio needs aiobotocore, which is not installed: pip install 'imdscreds[aio]'"
    ) from exc

from imdscreds import _forksafe
from imdscreds.chain import (
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
from imdscreds.refresh import RefreshingCredentials

__all__ = [
    "AioContainerCredentialProvider",
    "AioIMDSCredentialProvider",
    "AioIMDSRefreshableCredentials",
    "install",
]

log = logging.getLogger("imdscreds.aio")


class _OffLoopRefresh:
    """At most one refresh in flight, in a thread of its own; any loop or thread can wait for it."""

    def __init__(self, engine: RefreshingCredentials[Any]) -> None:
        self._engine = engine
        # Held for a few bytecodes to hand out the future, never across I/O or an await: taking it
        # on an event loop cannot stall the loop.
        self._guard = threading.Lock()
        self._inflight: concurrent.futures.Future[Any] | None = None
        _forksafe.track(self)

    def start(self) -> concurrent.futures.Future[Any]:
        with self._guard:
            future = self._inflight
            if future is None:
                future = self._inflight = concurrent.futures.Future()
                # Running from the start: a waiter's cancellation (asyncio.wrap_future passes it
                # on) then cannot cancel the refresh every other caller is waiting for.
                future.set_running_or_notify_cancel()
                threading.Thread(
                    target=self._run, args=(future,), name="imdscreds-aio-refresh", daemon=True
                ).start()
        return future

    def _run(self, future: concurrent.futures.Future[Any]) -> None:
        try:
            # The engine decides: fetch, or hand back what another thread just fetched, or (in the
            # advisory window, with a refresh already in flight elsewhere) the current set.
            view = self._engine.get_view()
        except BaseException as exc:  # the waiters' error, whatever it is
            self._finish()
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._finish()
            future.set_result(view)

    def _finish(self) -> None:
        # Before the result is set: a caller woken by it that still finds a refresh due starts a
        # new one instead of reading this finished future.
        with self._guard:
            self._inflight = None

    async def wait(self) -> Any:
        """The view once a due refresh allows: at once when the engine says callers need not wait."""
        future = self.start()
        engine = self._engine
        if not engine.must_wait():
            view = engine.peek_view()
            if view is not None:
                return view
        return await asyncio.wrap_future(future)

    def _after_fork_in_child(self) -> None:
        # The refresh thread was not copied: its future would never finish in the child.
        self._guard = threading.Lock()
        self._inflight = None


class AioIMDSRefreshableCredentials(
    EngineBackedCredentials,
    aiobotocore.credentials.AioRefreshableCredentials,  # type: ignore[misc]
):
    """aiobotocore ``AioRefreshableCredentials`` backed by a :class:`RefreshingCredentials` engine.

    Building one fetches nothing: the first ``await get_frozen_credentials()`` does, off the loop
    (and raises what ``fetch`` raises). The sync properties (``access_key``, ``secret_key``,
    ``token``, ``account_id``) give the credentials being served without refreshing, where
    aiobotocore's raise NotImplementedError; the awaitable accessors refresh when due.
    """

    # aiobotocore's __init__ is not called (see EngineBackedCredentials): among the rest it would
    # make an asyncio.Lock, bound to the first loop that contends it.
    def _bind(self) -> None:
        self._refresher = _OffLoopRefresh(self._engine)
        # The signer awaits get_frozen_credentials() on every request: the engine's reader on the
        # instance is one coroutine with the snapshot read inline; the method below, which says
        # the same, would add a frame.
        self._read = self._engine.async_reader(self._refresher.wait)
        self.get_frozen_credentials = self._read  # type: ignore[method-assign]

    async def get_frozen_credentials(self) -> Any:
        """The current key, secret, token and account id as botocore's ``ReadOnlyCredentials``."""
        return await self._read()

    async def get_access_key(self) -> str:
        return str((await self.get_frozen_credentials()).access_key)

    async def get_secret_key(self) -> str:
        return str((await self.get_frozen_credentials()).secret_key)

    async def get_token(self) -> str:
        return str((await self.get_frozen_credentials()).token)

    async def get_account_id(self) -> str | None:
        """The account id, when IMDS's extended credentials endpoint gave one (aiobotocore's
        endpoint resolver awaits this for account-based endpoints)."""
        frozen = await self.get_frozen_credentials()
        account_id: str | None = getattr(frozen, "account_id", None)
        return account_id

    def _served(self) -> RoleCredentials | None:
        return self._engine.peek()

    @property
    def access_key(self) -> str | None:
        """The access key id being served, not refreshed (await ``get_frozen_credentials()``)."""
        served = self._served()
        return None if served is None else served.access_key_id

    @property
    def secret_key(self) -> str | None:
        """The secret access key being served, not refreshed."""
        served = self._served()
        return None if served is None else served.secret_access_key

    @property
    def token(self) -> str | None:
        """The session token being served, not refreshed."""
        served = self._served()
        return None if served is None else served.token

    @property
    def account_id(self) -> str | None:
        """The account id being served, not refreshed (botocore's ``get_deferred_property``)."""
        served = self._served()
        return None if served is None else served.account_id

    @property
    def _expiry_time(self) -> Any:
        # Kept for code that reads botocore's private attribute; the engine owns the deadline.
        served = self._served()
        return None if served is None else served.expiration

    async def _refresh(self) -> None:
        await self.get_frozen_credentials()

    async def _protected_refresh(self, is_mandatory: bool) -> None:
        await self.get_frozen_credentials()


class AioIMDSCredentialProvider(InstanceRoleProvider):
    """The instance role's credentials for aiobotocore: IMDSv2, refreshed ahead of expiry.

    ``config`` is resolved at the first :meth:`load` when not given (from the environment and the
    session's profile, see :class:`IMDSConfig`); ``policy`` is checked here, eagerly.
    """

    _credentials: AioIMDSRefreshableCredentials | None
    _found = False  # the INFO line and the User-Agent feature, once per provider

    async def load(self) -> AioIMDSRefreshableCredentials | None:
        """The instance role's credentials, or None when there is no instance role here.

        The first fetch runs off the event loop, shared by every load and read meanwhile. Raises
        our error, with its hint, for anything else: a trust policy that does not let EC2 assume
        the role, a setting that is invalid, a token IMDS will not give.
        """
        credentials = self._credentials
        if credentials is None:
            config = self._resolve_config()
            if config.disabled:
                log.debug("IMDS is disabled (%s); no instance role credentials.", config.sources)
                return None
            client = IMDSClient(config, clock=self._clock)
            credentials = self._credentials = AioIMDSRefreshableCredentials(
                RoleCredentialsFetcher(client).fetch,
                policy=self.policy,
                clock=self._clock,
                rng=self._rng,
                client=client,
            )
        # A failed first fetch keeps the engine (and its connection): its first-fetch backoff then
        # spans loads, so a chain asked again at once gets the same answer without a request.
        try:
            await credentials.get_frozen_credentials()
        except NO_ROLE_HERE as exc:
            # aiobotocore's chain ends in "Unable to locate credentials" after this: say why. On
            # EC2 without a profile that is a WARNING; off EC2 (no IMDS at all) it is routine.
            level = logging.WARNING if isinstance(exc, NoInstanceProfileError) else logging.INFO
            log.log(level, "No instance role credentials: %s", exc)
            return None
        if not self._found:
            self._found = True
            count_imds_credentials()
            role = credentials.engine.peek()
            log.info(
                "Found credentials from the instance role %s.", role.role_name if role else "?"
            )
        return credentials


class AioContainerCredentialProvider(ContainerProviderBase):
    """Container credentials (``imdscreds serve``, EKS Pod Identity) for aiobotocore, through the
    refresh engine, in place of aiobotocore's ``container-role`` provider (see
    :class:`imdscreds.chain.ContainerProviderBase`)."""

    async def load(self) -> Any:
        """The endpoint's credentials; raises our error, with its hint, when it gives none."""
        credentials = self._credentials
        if credentials is None:
            endpoint = self._endpoint()
            if endpoint is None:
                return None if self._replaced is None else await self._replaced.load()
            fetcher = ContainerCredentialsFetcher(endpoint, clock=self._clock)
            credentials = self._credentials = AioIMDSRefreshableCredentials(
                fetcher.fetch,
                policy=self.policy,
                clock=self._clock,
                client=fetcher,
                method=self.METHOD,
            )
            log.info("Reading container credentials from %s.", endpoint.url)
        # The first fetch runs off the loop; a failure keeps the engine and its backoff.
        await credentials.get_frozen_credentials()
        return credentials


def install(
    session: Any,
    *,
    imds_config: IMDSConfig | None = None,
    policy: RefreshPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AioIMDSCredentialProvider:
    """Put an :class:`AioIMDSCredentialProvider` in ``session``'s credential chain, for ``iam-role``.

    ``session`` is an aiobotocore ``AioSession`` or an aioboto3 ``Session``. Call it before the
    session loads credentials (before the first client): a session keeps what it has loaded.
    """
    core = _aio_session(session)
    provider = AioIMDSCredentialProvider(imds_config, policy=policy, clock=clock, session=core)
    replace_instance_role_provider(core, provider, caller="imdscreds.aio.install()")
    replace_container_provider(
        core, lambda replaced: AioContainerCredentialProvider(replaced, policy=policy, clock=clock)
    )
    return provider


def _aio_session(session: Any) -> Any:
    if is_aio_session(session):
        return session
    # An aioboto3.Session keeps its AioSession here; aioboto3 has no public accessor for it.
    inner = getattr(session, "_session", None)
    if is_aio_session(inner):
        return inner
    raise TypeError(
        f"imdscreds.aio.install() needs an aiobotocore AioSession or an aioboto3 Session, not "
        f"{session!r}; for botocore and boto3 sessions use imdscreds.install()."
    )
