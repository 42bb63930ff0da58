"""The botocore provider and install(), against FakeIMDS on loopback (STS end to end: test_provider_e2e)."""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import botocore.credentials  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
import pytest

import imdscreds.provider
from imdscreds.config import IMDSConfig
from imdscreds.errors import ConfigError, TokenError, TrustPolicyError
from imdscreds.policy import RefreshPolicy
from imdscreds.provider import (
    IMDSCredentialProvider,
    IMDSRefreshableCredentials,
    boto3_session,
    install,
)
from imdscreds.testing import FakeClock, FakeIMDS

LEGACY = "/latest/meta-data/iam/security-credentials/"
EXTENDED = "/latest/meta-data/iam/security-credentials-extended/"


def provider_for(imds: FakeIMDS, **kwargs: object) -> IMDSCredentialProvider:
    return IMDSCredentialProvider(IMDSConfig.resolve(endpoint=imds.endpoint), **kwargs)  # type: ignore[arg-type]


def loaded(imds: FakeIMDS, **kwargs: object) -> IMDSRefreshableCredentials:
    credentials = provider_for(imds, **kwargs).load()
    assert credentials is not None
    return credentials


@pytest.fixture
def env_imds(fake_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch) -> FakeIMDS:
    """A healthy FakeIMDS that botocore sessions find through AWS_EC2_METADATA_SERVICE_ENDPOINT."""
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    return fake_imds


# -- what load() returns ----------------------------------------------------------------------


def test_loaded_credentials_are_botocore_refreshable_credentials(fake_imds: FakeIMDS) -> None:
    credentials = loaded(fake_imds)
    served = fake_imds.current_credentials
    assert isinstance(credentials, botocore.credentials.RefreshableCredentials)
    assert isinstance(credentials, botocore.credentials.Credentials)
    assert credentials.method == "iam-role"
    frozen = credentials.get_frozen_credentials()
    assert isinstance(frozen, botocore.credentials.ReadOnlyCredentials)
    assert frozen.access_key == served.access_key_id
    assert frozen.secret_key == served.secret_access_key
    assert frozen.token == served.token
    assert frozen.account_id == "123456789012"
    assert credentials.access_key == served.access_key_id
    assert credentials.secret_key == served.secret_access_key
    assert credentials.token == served.token
    assert credentials.account_id == "123456789012"
    assert credentials.get_deferred_property("access_key")() == served.access_key_id
    assert credentials.refresh_needed() is False
    assert credentials.refresh_needed(5 * 3600) is False
    assert credentials.refresh_needed(7 * 3600) is True
    credentials.close()


def test_frozen_credentials_are_built_once_per_fetch(fake_imds: FakeIMDS) -> None:
    credentials = loaded(fake_imds)
    first = credentials.get_frozen_credentials()
    assert all(credentials.get_frozen_credentials() is first for _ in range(100))
    assert fake_imds.count(method="GET") == 2  # the role listing, the credentials: no more


def test_credentials_refresh_through_every_botocore_accessor(
    fake_imds_factory: Callable[..., FakeIMDS], fake_clock: FakeClock
) -> None:
    imds = fake_imds_factory(clock=fake_clock)
    credentials = loaded(imds, clock=fake_clock, rng=random.Random(1))
    first = credentials.get_frozen_credentials()
    fake_clock.advance(6 * 3600 - 800)  # inside the advisory window
    assert credentials.refresh_needed() is True
    assert credentials.access_key != first.access_key  # the property refreshes, as botocore's does
    assert credentials.refresh_needed() is False
    second = credentials.get_frozen_credentials()
    assert second.access_key == credentials.access_key
    assert second.secret_key != first.secret_key


def test_repeated_load_returns_the_same_credentials(fake_imds: FakeIMDS) -> None:
    provider = provider_for(fake_imds)
    first = provider.load()
    assert first is not None
    assert provider.load() is first
    assert fake_imds.count(method="GET") == 2


def test_no_instance_profile_means_none_so_the_chain_goes_on(
    fake_imds: FakeIMDS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="imdscreds")
    fake_imds.scenario = "no-profile"
    assert provider_for(fake_imds).load() is None
    # botocore then says only "Unable to locate credentials": the WARNING says why, and the fix.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "No instance profile" in warnings[0]
    assert "associate-iam-instance-profile" in warnings[0]


def test_no_imds_at_all_means_none(unreachable_endpoint: str) -> None:
    provider = IMDSCredentialProvider(IMDSConfig.resolve(endpoint=unreachable_endpoint))
    assert provider.load() is None


def test_imds_disabled_by_configuration_means_none_without_a_request(
    fake_imds: FakeIMDS,
) -> None:
    config = IMDSConfig.resolve(endpoint=fake_imds.endpoint, disabled=True)
    assert IMDSCredentialProvider(config).load() is None
    assert fake_imds.count() == 0


def test_trust_policy_problem_raises_with_its_hint(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "trust-policy"
    with pytest.raises(TrustPolicyError, match=r"ec2\.amazonaws\.com"):
        provider_for(fake_imds).load()


def test_hop_limit_with_v1_disabled_raises_with_its_hint(fake_imds: FakeIMDS) -> None:
    fake_imds.scenario = "hop-limit"
    config = IMDSConfig.resolve(endpoint=fake_imds.endpoint, v1_disabled=True, timeout=0.2)
    with pytest.raises(TokenError):
        IMDSCredentialProvider(config).load()


def test_bad_configuration_raises_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv5")
    monkeypatch.delenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    with pytest.raises(ConfigError, match="IPv5"):
        IMDSCredentialProvider().load()


def test_bad_policy_is_rejected_when_the_provider_is_built() -> None:
    with pytest.raises(ConfigError, match="advisory_window"):
        IMDSCredentialProvider(policy=RefreshPolicy(advisory_window=-1))
    with pytest.raises(TypeError, match="RefreshPolicy"):
        IMDSCredentialProvider(policy={"advisory_window": 60})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="IMDSConfig"):
        IMDSCredentialProvider("http://127.0.0.1:9")  # type: ignore[arg-type]


def test_no_secret_in_reprs(fake_imds: FakeIMDS) -> None:
    provider = provider_for(fake_imds)
    credentials = provider.load()
    served = fake_imds.current_credentials
    for text in (repr(provider), repr(credentials), str(credentials), repr(credentials.engine)):  # type: ignore[union-attr]
        assert served.secret_access_key not in text
        assert served.token not in text
    assert served.access_key_id in repr(credentials)


# -- install() ----------------------------------------------------------------------------------


def chain(session: botocore.session.Session) -> list[str]:
    return [p.METHOD for p in session.get_component("credential_provider").providers]


def test_install_replaces_botocore_iam_role_provider_in_place(env_imds: FakeIMDS) -> None:
    session = botocore.session.Session()
    before = chain(session)
    provider = install(session)
    assert chain(session) == before  # same methods, same order
    resolver = session.get_component("credential_provider")
    assert resolver.get_provider("iam-role") is provider
    credentials = session.get_credentials()
    assert isinstance(credentials, IMDSRefreshableCredentials)
    assert credentials.access_key == env_imds.current_credentials.access_key_id
    assert env_imds.count(LEGACY) == 0  # botocore's own provider (legacy path) never ran


def test_environment_credentials_still_win(
    env_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    session = botocore.session.Session()
    install(session)
    credentials = session.get_credentials()
    assert credentials.method == "env"
    assert credentials.access_key == "AKIAENVIRONMENT00001"
    assert env_imds.count() == 0


def test_shared_credentials_file_still_wins(
    env_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id = AKIASHAREDFILE000001\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    session = botocore.session.Session()
    install(session)
    assert session.get_credentials().method == "shared-credentials-file"
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
    session = botocore.session.Session(profile="deploy")
    install(session)
    # The assume-role credentials are deferred (STS is called at first use); their source is
    # resolved now, through the provider registered under the canonical name.
    credentials = session.get_credentials()
    assert credentials.method == "assume-role"
    assert env_imds.count(EXTENDED + env_imds.role_name) == 1
    assert env_imds.count(LEGACY) == 0


def test_install_into_a_boto3_session(env_imds: FakeIMDS) -> None:
    session = boto3.Session(region_name="us-east-1")
    install(session)
    credentials = session.get_credentials()
    assert isinstance(credentials, IMDSRefreshableCredentials)


def test_install_without_a_session_uses_boto3_default_session(
    env_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    provider = install()
    assert boto3.DEFAULT_SESSION is not None
    credentials = boto3.DEFAULT_SESSION.get_credentials()
    assert isinstance(credentials, IMDSRefreshableCredentials)
    assert provider.load() is credentials


def test_install_rejects_what_is_not_a_session() -> None:
    with pytest.raises(TypeError, match="botocore or boto3 Session"):
        install("default")


def test_boto3_session_loads_imdscreds_credentials_for_its_profile(
    env_imds: FakeIMDS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        f"[profile app]\nregion = eu-west-1\nec2_instance_profile_name = {env_imds.role_name}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    session = boto3_session(profile_name="app")
    assert session.region_name == "eu-west-1"
    credentials = session.get_credentials()
    assert isinstance(credentials, IMDSRefreshableCredentials)
    # The IMDS settings come from the session's profile, as botocore's own do: the role name is
    # configured there, so no role discovery request is made.
    assert env_imds.count(EXTENDED) == 0
    assert env_imds.count(EXTENDED + env_imds.role_name) == 1


def test_boto3_session_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what an uninstalled package looks like
    with pytest.raises(ImportError, match=r"pip install 'imdscreds\[boto3\]'"):
        boto3_session()
    with pytest.raises(ImportError, match=r"imdscreds\[boto3\]"):
        install()


def test_module_exports() -> None:
    assert set(imdscreds.provider.__all__) == {
        "ContainerCredentialProvider",
        "IMDSCredentialProvider",
        "IMDSRefreshableCredentials",
        "boto3_session",
        "install",
    }
