"""The peers in this process: imdscreds, botocore's own provider, ec2-metadata.

Each peer is built against a FakeIMDS endpoint, which is checked to be 127.0.0.1 before anything
is sent. With a ``FakeClock`` the peer reads the simulated time wherever its code reads time:

- imdscreds takes the clock as a constructor argument (its clock seam).
- botocore: ``RefreshableCredentials`` takes ``time_fetcher``; ``InstanceMetadataProvider.load()``
  does not pass one, so the simulated run builds the ``RefreshableCredentials`` from the fetcher's
  first result itself, exactly as ``load()`` does, plus ``time_fetcher=clock.now``. The fetcher's
  "static stability" check (``InstanceMetadataFetcher._evaluate_expiration``) reads the wall clock
  through ``botocore.utils.get_current_datetime``, a module global, which is swapped for the fake
  clock while the run lasts. Without that swap it compares the simulated expiry with today's date.
- ec2-metadata caches its IMDSv2 token for 6 h by ``time.time()``; its module's ``time`` is
  swapped for the fake clock the same way, or the fake's tokens (which expire in simulated time)
  would be refused after 6 simulated hours.

Hot path, cold start and "no IMDS" use each peer exactly as shipped, on the real clock.
"""

from __future__ import annotations

import os
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from benchmarks.harness import Session, ThreadedCallers, assert_loopback, threaded_ns_per_call
from benchmarks.hot_path import ns_per_call
from imdscreds.testing import FakeClock, FakeIMDS


@dataclass
class Handle:
    """A peer built against one endpoint: ``get`` returns the access key id a caller would use;
    ``credentials.get_frozen_credentials()`` is the peer's per-request read (what the signer calls).
    """

    get: Callable[[], str]
    credentials: Any
    close: Callable[[], None]


class Peer:
    """One credentials library; subclasses say how to build it."""

    name = ""
    distribution = ""
    note = ""

    @property
    def version(self) -> str:
        return metadata.version(self.distribution)

    def build(self, endpoint: str, clock: FakeClock | None) -> Handle:
        raise NotImplementedError

    def seams(self, clock: FakeClock) -> AbstractContextManager[object]:
        """What has to be swapped for the simulated clock to reach the peer's code."""
        return nullcontext()

    def hot_path(self, endpoint: str, threads: int, calls: int, repeats: int) -> float:
        """Median ns per credentials read, ``threads`` threads at once, real clock."""
        handle = self.build(assert_loopback(endpoint), None)
        try:
            ns_per_call(handle.credentials, max(1, calls // 10), 3)  # warm-up
            if threads == 1:
                return ns_per_call(handle.credentials, calls, repeats)
            return threaded_ns_per_call(handle.credentials, threads, calls, repeats)
        finally:
            handle.close()

    def cold_start(self, endpoint: str) -> float:
        """Seconds from nothing to the first credentials (building a peer fetches them)."""
        began = time.perf_counter()
        handle = self.build(assert_loopback(endpoint), None)
        elapsed = time.perf_counter() - began
        handle.close()
        return elapsed

    def give_up(self, endpoint: str, cap: float) -> tuple[float, str]:
        """Seconds until building the peer ends without credentials (at most ``cap``), and how."""
        outcome: list[str] = []

        def attempt() -> None:
            try:
                handle = self.build(assert_loopback(endpoint), None)
            except LookupError:
                outcome.append("returned None: the chain moves on")
            except Exception as exc:  # noqa: BLE001 - the outcome is what we report
                outcome.append(f"raised {type(exc).__name__}")
            else:
                outcome.append("got credentials")
                handle.close()

        thread = threading.Thread(target=attempt, name=f"give-up-{self.name}", daemon=True)
        began = time.perf_counter()
        thread.start()
        thread.join(cap)
        elapsed = time.perf_counter() - began
        return elapsed, outcome[0] if outcome else f"still waiting after {cap:g} s"

    def sim(self, fake: FakeIMDS, clock: FakeClock, threads: int) -> Session:
        stack = ExitStack()
        stack.enter_context(self.seams(clock))
        try:
            handle = self.build(assert_loopback(fake.endpoint), clock)
        except BaseException:
            stack.close()
            raise
        stack.callback(handle.close)
        return _ThreadedSession(ThreadedCallers(handle.get, threads), stack)


class _ThreadedSession:
    def __init__(self, callers: ThreadedCallers, stack: ExitStack) -> None:
        self._callers = callers
        self._stack = stack

    def step(self, calls: int) -> Any:
        return self._callers.step(calls)

    def close(self) -> None:
        try:
            self._callers.close()
        finally:
            self._stack.close()


@contextmanager
def swapped(owner: object, name: str, value: object) -> Iterator[None]:
    """Set ``owner.name`` to ``value`` for the block."""
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


# -- imdscreds --------------------------------------------------------------------------------


class ImdscredsPeer(Peer):
    name = "imdscreds"
    distribution = "imdscreds"
    note = (
        "IMDSCredentialProvider(IMDSConfig(endpoint=the fake)).load() with the defaults: refresh "
        "15 min (+ up to 5 min jitter) before expiry, callers wait from 1 min before, no prefetch "
        "thread; 1 s timeout, 3 attempts. The clock goes in through its constructor"
    )

    def build(self, endpoint: str, clock: FakeClock | None) -> Handle:
        from imdscreds import IMDSConfig
        from imdscreds.clock import SYSTEM_CLOCK
        from imdscreds.provider import IMDSCredentialProvider

        # Defaults for everything but the endpoint (1 s timeout, 3 attempts), whatever the shell's
        # AWS_* variables or ~/.aws/config say.
        config = IMDSConfig.resolve(endpoint=endpoint, environ={}, config_file=os.devnull)
        assert_loopback(config.endpoint)
        provider = IMDSCredentialProvider(config, clock=SYSTEM_CLOCK if clock is None else clock)
        credentials = provider.load()
        if credentials is None:
            raise LookupError("imdscreds' provider found no instance role (the chain moves on)")
        return Handle(
            get=lambda: credentials.get_frozen_credentials().access_key,
            credentials=credentials,
            close=credentials.close,
        )


# -- botocore -----------------------------------------------------------------------------------


class BotocorePeer(Peer):
    name = "botocore"
    distribution = "botocore"
    note = (
        "InstanceMetadataFetcher(timeout=1, num_attempts=1: botocore's defaults) pointed at the "
        "fake through its ec2_metadata_service_endpoint config, InstanceMetadataProvider.load(). "
        "Simulated runs build the RefreshableCredentials as load() does plus "
        "time_fetcher=clock.now, and swap botocore.utils.get_current_datetime (read by the "
        "fetcher's expiry-extension check) for the fake clock"
    )

    def _fetcher(self, endpoint: str) -> Any:
        from botocore.utils import InstanceMetadataFetcher, get_environ_proxies

        # What botocore's credential resolver builds from AWS_EC2_METADATA_SERVICE_ENDPOINT,
        # with an empty env so AWS_EC2_METADATA_DISABLED in the caller's shell cannot interfere.
        fetcher = InstanceMetadataFetcher(
            timeout=1, num_attempts=1, env={}, config={"ec2_metadata_service_endpoint": endpoint}
        )
        assert_loopback(fetcher.get_base_url())
        # botocore sends IMDS requests through HTTP_PROXY & co.; the runner clears them.
        assert not get_environ_proxies(fetcher.get_base_url()), "a proxy would carry IMDS traffic"
        return fetcher

    def build(self, endpoint: str, clock: FakeClock | None) -> Handle:
        from botocore.credentials import InstanceMetadataProvider, RefreshableCredentials
        from dateutil.parser import parse

        fetcher = self._fetcher(endpoint)
        if clock is None:
            credentials = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
            if credentials is None:
                raise LookupError("botocore's InstanceMetadataProvider found no credentials")
        else:
            # InstanceMetadataProvider.load(), with the simulated clock as time_fetcher.
            data = fetcher.retrieve_iam_role_credentials()
            if not data:
                raise LookupError("botocore's InstanceMetadataFetcher found no credentials")
            credentials = RefreshableCredentials(
                access_key=data["access_key"],
                secret_key=data["secret_key"],
                token=data["token"],
                expiry_time=parse(data["expiry_time"]),
                refresh_using=fetcher.retrieve_iam_role_credentials,
                method=InstanceMetadataProvider.METHOD,
                time_fetcher=clock.now,
            )
        return Handle(
            get=lambda: credentials.get_frozen_credentials().access_key,
            credentials=credentials,
            close=lambda: None,
        )

    def seams(self, clock: FakeClock) -> AbstractContextManager[object]:
        import botocore.utils

        def get_current_datetime(remove_tzinfo: bool = True) -> datetime:
            now = clock.now().astimezone(timezone.utc)
            return now.replace(tzinfo=None) if remove_tzinfo else now

        return swapped(botocore.utils, "get_current_datetime", get_current_datetime)


# -- ec2-metadata -------------------------------------------------------------------------------


class Ec2MetadataPeer(Peer):
    name = "ec2-metadata"
    distribution = "ec2-metadata"
    note = (
        "EC2Metadata(pool_manager=urllib3.PoolManager(maxsize=32)) with its URL attributes "
        "pointed at the fake (its default pool keeps one connection, so 32 threads would reconnect"
        " on most reads); iam_security_credentials has no cache, so every read is a GET. "
        "Simulated runs swap the module's time (its token cache's clock) for the fake clock"
    )

    def build(self, endpoint: str, clock: FakeClock | None) -> Handle:
        import urllib3
        from ec2_metadata import EC2Metadata

        pool = urllib3.PoolManager(maxsize=32)  # one connection per caller thread
        client = EC2Metadata(pool_manager=pool)
        # Its URLs are plain attributes set in __init__; nothing is sent until one is read.
        client.service_url = f"{endpoint}/latest/"
        client.dynamic_url = f"{client.service_url}dynamic/"
        client.metadata_url = f"{client.service_url}meta-data/"
        client.userdata_url = f"{client.service_url}user-data/"
        for url in (client.service_url, client.dynamic_url, client.metadata_url):
            assert_loopback(url)

        reader = _Ec2MetadataReader(client)
        reader.get_frozen_credentials()
        return Handle(
            get=lambda: reader.get_frozen_credentials()["AccessKeyId"],
            credentials=reader,
            close=pool.clear,
        )

    def seams(self, clock: FakeClock) -> AbstractContextManager[object]:
        import ec2_metadata

        fake_time = types.SimpleNamespace(time=lambda: clock.now().timestamp())
        return swapped(ec2_metadata, "time", fake_time)


class _Ec2MetadataReader:
    """ec2-metadata's credentials read under the name the hot-path loop calls."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_frozen_credentials(self) -> Any:
        document = self._client.iam_security_credentials
        if document is None:
            raise LookupError("ec2-metadata found no instance profile")
        return document


IN_PROCESS_PEERS: tuple[Peer, ...] = (ImdscredsPeer(), BotocorePeer(), Ec2MetadataPeer())


def available(peer: Peer) -> str | None:
    """None when the peer can run here, else why not."""
    try:
        peer.version  # noqa: B018 - raises when the distribution is missing
    except metadata.PackageNotFoundError:
        return f"{peer.distribution} is not installed (pip install {peer.distribution})"
    return None
