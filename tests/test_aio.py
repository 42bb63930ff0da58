"""imdscreds.aio: the engine behind aiobotocore's async credential reads, against FakeIMDS on loopback,
with real AioSessions, event loops and threads (STS end to end and S3: test_examples)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

aiobotocore_session = pytest.importorskip("aiobotocore.session", reason="the aio extra is absent")
aiobotocore_credentials = pytest.importorskip("aiobotocore.credentials")

import botocore.credentials  # type: ignore[import-untyped]  # noqa: E402
import botocore.session  # type: ignore[import-untyped]  # noqa: E402

import imdscreds  # noqa: E402
import imdscreds.aio  # noqa: E402
from imdscreds.aio import AioIMDSCredentialProvider, AioIMDSRefreshableCredentials  # noqa: E402
from imdscreds.config import IMDSConfig  # noqa: E402
from imdscreds.errors import TrustPolicyError  # noqa: E402
from imdscreds.testing import FakeClock, FakeIMDS  # noqa: E402

LEGACY = "/latest/meta-data/iam/security-credentials/"
EXTENDED = "/latest/meta-data/iam/security-credentials-extended/"
VALIDITY = 6 * 3600.0
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env_imds(fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch) -> FakeIMDS:
    """A healthy FakeIMDS that sessions find through AWS_EC2_METADATA_SERVICE_ENDPOINT."""
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    return fake_imds


@pytest.fixture
def clocked(
    fake_clock: FakeClock,
    fake_imds_factory: Callable[..., FakeIMDS],
    monkeypatch: pytest.MonkeyPatch,
) -> FakeIMDS:
    """A FakeIMDS rotating hourly on ``fake_clock``, found through the environment."""
    imds = fake_imds_factory(clock=fake_clock)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint)
    return imds


def installed(**kwargs: Any) -> Any:
    session = aiobotocore_session.AioSession()
    imdscreds.aio.install(session, **kwargs)
    return session


def patient(imds: FakeIMDS, clock: FakeClock) -> Any:
    """A session on ``clock`` whose IMDS timeout outlasts a slow fake on a busy machine."""
    return installed(clock=clock, imds_config=IMDSConfig.resolve(endpoint=imds.endpoint, timeout=5))


def credentials_gets(imds: FakeIMDS) -> int:
    return imds.count(EXTENDED + imds.role_name)


async def loaded(session: Any) -> AioIMDSRefreshableCredentials:
    credentials = await session.get_credentials()
    assert isinstance(credentials, AioIMDSRefreshableCredentials)
    return credentials


# -- what aiobotocore sees ------------------------------------------------------------------------


def test_install_serves_credentials_aiobotocore_treats_as_its_own(env_imds: FakeIMDS) -> None:
    session = installed()

    async def main() -> None:
        credentials = await loaded(session)
        served = env_imds.current_credentials
        assert isinstance(credentials, aiobotocore_credentials.AioRefreshableCredentials)
        assert credentials.method == "iam-role"
        frozen = await credentials.get_frozen_credentials()
        assert isinstance(frozen, botocore.credentials.ReadOnlyCredentials)
        assert frozen == (
            served.access_key_id,
            served.secret_access_key,
            served.token,
            "123456789012",
        )
        assert await credentials.get_account_id() == "123456789012"
        assert await credentials.get_access_key() == served.access_key_id
        assert await credentials.get_secret_key() == served.secret_access_key
        assert await credentials.get_token() == served.token
        # botocore's endpoint resolver reads these from sync code: no refresh, no I/O.
        assert credentials.get_deferred_property("account_id")() == "123456789012"
        assert credentials.access_key == served.access_key_id
        assert credentials.refresh_needed() is False
        assert credentials.refresh_needed(7 * 3600) is True
        assert all([await credentials.get_frozen_credentials() is frozen for _ in range(100)])

    asyncio.run(main())
    assert env_imds.count() == 3  # token, role list, credentials: and nothing per read
    assert env_imds.count(LEGACY) == 0  # aiobotocore's own provider starts with the legacy path


def test_sync_install_on_an_aio_session_fails_at_once_pointing_at_imdscreds_aio() -> None:
    aioboto3 = pytest.importorskip("aioboto3")
    for session in (aiobotocore_session.AioSession(), aioboto3.Session()):
        with pytest.raises(TypeError, match=r"imdscreds\.aio\.install\(session\)"):
            imdscreds.install(session)


def test_aio_install_into_an_aioboto3_session(env_imds: FakeIMDS) -> None:
    aioboto3 = pytest.importorskip("aioboto3")
    session = aioboto3.Session(region_name="us-east-1")
    imdscreds.aio.install(session)

    async def main() -> Any:
        return await session.get_credentials()

    assert isinstance(asyncio.run(main()), AioIMDSRefreshableCredentials)


def test_aio_install_rejects_a_botocore_session() -> None:
    with pytest.raises(TypeError, match=r"use imdscreds\.install\(\)"):
        imdscreds.aio.install(botocore.session.Session())


def test_environment_credentials_still_win(
    env_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    session = installed()
    credentials = asyncio.run(session.get_credentials())
    assert credentials.method == "env"
    assert env_imds.count() == 0


def test_shared_credentials_file_still_wins(
    env_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id = AKIASHAREDFILE000001\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    credentials = asyncio.run(installed().get_credentials())
    assert credentials.method == "shared-credentials-file"
    assert env_imds.count() == 0


def test_profile_with_credential_source_ec2_instance_metadata_uses_imdscreds(
    env_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile deploy]\n"
        "role_arn = arn:aws:iam::123456789012:role/deployer\n"
        "credential_source = Ec2InstanceMetadata\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    session = aiobotocore_session.AioSession(profile="deploy")
    imdscreds.aio.install(session)
    credentials = asyncio.run(session.get_credentials())
    assert credentials.method == "assume-role"
    # The source was loaded through imdscreds: the extended path, never aiobotocore's legacy one.
    assert credentials_gets(env_imds) == 1
    assert env_imds.count(LEGACY) == 0


def test_no_instance_profile_lets_the_chain_end_in_none(
    env_imds: FakeIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    env_imds.scenario = "no-profile"
    assert asyncio.run(installed().get_credentials()) is None
    assert any("No instance role credentials" in r.getMessage() for r in caplog.records)


def test_a_trust_policy_failure_reaches_the_caller_with_its_hint(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    clocked.scenario = "trust-policy"
    session = patient(clocked, fake_clock)
    for _ in range(3):  # loads during the first-fetch backoff share the one failed attempt
        with pytest.raises(TrustPolicyError, match=r"ec2\.amazonaws\.com"):
            asyncio.run(session.get_credentials())
    assert credentials_gets(clocked) == 1
    clocked.scenario = "healthy"
    fake_clock.advance(30.0)  # past the backoff: the next load tries again
    assert isinstance(asyncio.run(session.get_credentials()), AioIMDSRefreshableCredentials)


def test_concurrent_first_loads_share_one_fetch(env_imds: FakeIMDS) -> None:
    env_imds.latency = 0.05
    provider = AioIMDSCredentialProvider(IMDSConfig.resolve(endpoint=env_imds.endpoint))

    async def main() -> list[Any]:
        return await asyncio.gather(*(provider.load() for _ in range(50)))

    results = asyncio.run(main())
    assert all(r is results[0] for r in results)
    assert credentials_gets(env_imds) == 1


# -- refreshing off the loop, single flight everywhere --------------------------------------------


def test_200_tasks_at_the_start_of_the_mandatory_window_share_one_fetch(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    session = patient(clocked, fake_clock)

    async def main() -> None:
        credentials = await loaded(session)
        first = await credentials.get_frozen_credentials()
        fake_clock.advance(VALIDITY - 59.0)
        clocked.latency = 0.1  # long enough for every task to arrive while the fetch is out
        results = await asyncio.gather(*(credentials.get_frozen_credentials() for _ in range(200)))
        assert all(r is results[0] for r in results)
        assert results[0].access_key != first.access_key

    asyncio.run(main())
    assert credentials_gets(clocked) == 2  # the first fetch and the one refresh


def test_the_event_loop_keeps_running_while_imds_takes_half_a_second(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    session = patient(clocked, fake_clock)
    ticks: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    async def main() -> tuple[float, float]:
        credentials = await loaded(session)
        fake_clock.advance(VALIDITY - 30.0)  # mandatory: this caller waits for the refresh
        clocked.latency = 0.5
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0)
        began = time.monotonic()
        await credentials.get_frozen_credentials()
        waited = time.monotonic() - began
        stop.set()
        await ticking
        return began, waited

    began, waited = asyncio.run(main())
    assert waited >= 0.5  # the caller did wait for IMDS ...
    during = [t for t in ticks if began < t < began + waited]
    # ... while the loop went on running other tasks (a blocked loop would tick once, after it).
    assert len(during) > 5


def test_advisory_window_callers_get_the_current_credentials_at_once(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    session = patient(clocked, fake_clock)

    async def main() -> None:
        credentials = await loaded(session)
        first = await credentials.get_frozen_credentials()
        fake_clock.advance(VALIDITY - 800.0)  # past the advisory point (15-20 min before expiry)
        clocked.latency = 0.3
        began = time.monotonic()
        assert await credentials.get_frozen_credentials() is first
        assert time.monotonic() - began < 0.3  # not waiting for IMDS
        for _ in range(500):  # the refresh lands in the background
            if (await credentials.get_frozen_credentials()) is not first:
                break
            await asyncio.sleep(0.01)
        assert (await credentials.get_frozen_credentials()) is not first

    asyncio.run(main())
    assert credentials_gets(clocked) == 2


def test_a_cancelled_waiter_does_not_cancel_the_refresh_others_wait_for(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    session = patient(clocked, fake_clock)

    async def main() -> None:
        credentials = await loaded(session)
        fake_clock.advance(VALIDITY - 30.0)
        clocked.latency = 0.2
        doomed = asyncio.create_task(credentials.get_frozen_credentials())
        patient = asyncio.create_task(credentials.get_frozen_credentials())
        await asyncio.sleep(0.05)
        doomed.cancel()
        fresh = await patient
        assert fresh.access_key == clocked.current_credentials.access_key_id

    asyncio.run(main())
    assert credentials_gets(clocked) == 2


def test_one_session_across_asyncio_runs_and_threads_each_running_a_loop(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    session = patient(clocked, fake_clock)
    credentials = asyncio.run(session.get_credentials())
    clocked.latency = 0.05
    failures: list[BaseException] = []
    served: list[set[int]] = []

    async def eight_at_once() -> None:
        results = await asyncio.gather(
            *(credentials.get_frozen_credentials() for _ in range(8)), return_exceptions=True
        )
        failures.extend(r for r in results if isinstance(r, BaseException))
        served.append({id(r) for r in results})

    for _ in range(2):  # two asyncio.run() calls, each in the mandatory window
        fake_clock.advance(VALIDITY - 30.0)
        asyncio.run(eight_at_once())
    fake_clock.advance(VALIDITY - 30.0)
    threads = [threading.Thread(target=asyncio.run, args=(eight_at_once(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == []
    assert all(len(ids) == 1 for ids in served)  # each loop's readers shared one outcome
    # The first fetch, then at most one per refresh however many loops asked (fewer when a slow
    # answer on a busy machine made one fail, and the next readers got the last credentials).
    assert 2 <= credentials_gets(clocked) <= 4


def test_an_outage_across_expiry_raises_nothing_to_callers(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    session = patient(clocked, fake_clock)

    async def main() -> int:
        credentials = await loaded(session)
        first = await credentials.get_frozen_credentials()
        fake_clock.advance(VALIDITY - 25 * 60.0)
        clocked.scenario = "outage"
        raised = 0
        for _ in range(40):  # 40 simulated minutes: across the expiry at 6 h
            results = await asyncio.gather(
                *(credentials.get_frozen_credentials() for _ in range(10)), return_exceptions=True
            )
            raised += sum(isinstance(r, BaseException) for r in results)
            assert all(r is first for r in results if not isinstance(r, BaseException))
            fake_clock.advance(60.0)
        clocked.scenario = "healthy"
        for _ in range(20):  # back within the longest backoff (300 s)
            if (await credentials.get_frozen_credentials()) is not first:
                break
            fake_clock.advance(60.0)
            await asyncio.sleep(0.01)
        assert (await credentials.get_frozen_credentials()) is not first
        return raised

    assert asyncio.run(main()) == 0


def test_nothing_of_aiobotocore_is_imported_unless_imdscreds_aio_is() -> None:
    code = (
        "import sys, botocore.session, imdscreds, imdscreds.provider, imdscreds.chain\n"
        "imdscreds.install(botocore.session.Session())\n"
        "assert not [m for m in sys.modules if m.startswith(('aiobotocore', 'aiohttp'))], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_module_exports() -> None:
    assert set(imdscreds.aio.__all__) == {
        "AioContainerCredentialProvider",
        "AioIMDSCredentialProvider",
        "AioIMDSRefreshableCredentials",
        "install",
    }


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_refresh_is_out_refreshes_on_its_own(
    clocked: FakeIMDS, fake_clock: FakeClock
) -> None:
    session = patient(clocked, fake_clock)
    credentials = asyncio.run(session.get_credentials())
    fake_clock.advance(VALIDITY - 30.0)
    clocked.latency = 0.3
    # The parent's refresh thread is out at IMDS when the fork happens; it does not exist in the
    # child, so the child must not wait for its result.
    waiting = threading.Thread(target=asyncio.run, args=(credentials.get_frozen_credentials(),))
    waiting.start()
    deadline = time.monotonic() + 5
    while credentials_gets(clocked) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 1
        try:
            read = asyncio.wait_for(credentials.get_frozen_credentials(), 10)
            code = 0 if asyncio.run(read).access_key else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    waiting.join(10)
    assert os.waitstatus_to_exitcode(status) == 0


# -- a broker's container credentials, through the engine ----------------------------------------


def test_aio_install_reads_a_broker_through_the_engine_when_its_two_variables_are_set(
    fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imdscreds import IMDSClient, RoleCredentialsFetcher
    from imdscreds.aio import AioContainerCredentialProvider
    from imdscreds.broker import Broker, TokenFile

    token = TokenFile.create()
    config = IMDSConfig.resolve(endpoint=fake_imds.endpoint, environ={}, config_file=os.devnull)
    broker = Broker(RoleCredentialsFetcher(IMDSClient(config)).fetch, token=token.token).start()
    try:
        assert broker.wait_first_fetch(10)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", broker.url)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token.path))
        session = aiobotocore_session.AioSession()
        imdscreds.aio.install(session)
        providers = session.get_component("credential_provider").providers
        methods = [provider.METHOD for provider in providers]
        assert isinstance(
            providers[methods.index("container-role")], AioContainerCredentialProvider
        )
        assert methods.index("container-role") < methods.index("iam-role")  # the order kept
        fake_imds.reset_counts()

        async def read() -> tuple[str, Any]:
            credentials = await session.get_credentials()
            frozen = await credentials.get_frozen_credentials()
            return credentials.method, frozen

        method, frozen = asyncio.run(read())
        again = asyncio.run(read())  # another loop: the same engine, no new fetch
    finally:
        broker.stop()
        token.remove()
    assert method == "container-role"
    assert frozen.access_key == fake_imds.current_credentials.access_key_id
    assert again == (method, frozen)
    assert fake_imds.count() == 0  # the broker already had them


def test_aio_container_provider_defers_to_the_one_it_replaced_without_the_variables() -> None:
    from imdscreds.aio import AioContainerCredentialProvider

    class Replaced:
        METHOD = "container-role"

        async def load(self) -> str:
            return "replaced provider's credentials"

    assert (
        asyncio.run(AioContainerCredentialProvider(Replaced(), environ={}).load())
        == "replaced provider's credentials"
    )
    assert asyncio.run(AioContainerCredentialProvider(None, environ={}).load()) is None
