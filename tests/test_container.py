"""The container-credentials fetch and the engine-backed ``container-role`` provider, against a real
broker on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import pytest

import imdscreds
from imdscreds import IMDSClient, IMDSConfig, RoleCredentialsFetcher
from imdscreds.broker import Broker, TokenFile
from imdscreds.container import ContainerCredentialsFetcher, ContainerEndpoint
from imdscreds.errors import ConfigError, ContainerCredentialsError
from imdscreds.provider import ContainerCredentialProvider
from imdscreds.testing import FakeIMDS


@pytest.fixture
def served(fake_imds: FakeIMDS) -> Iterator[tuple[Broker, TokenFile]]:
    token = TokenFile.create()
    config = IMDSConfig.resolve(endpoint=fake_imds.endpoint, environ={}, config_file=os.devnull)
    broker = Broker(RoleCredentialsFetcher(IMDSClient(config)).fetch, token=token.token).start()
    assert broker.wait_first_fetch(10)
    yield broker, token
    broker.stop()
    token.remove()


def test_fetch_reads_the_token_file_every_time_and_parses_the_document(
    fake_imds: FakeIMDS, served: tuple[Broker, TokenFile], tmp_path: Path
) -> None:
    broker, token = served
    fetcher = ContainerCredentialsFetcher(ContainerEndpoint(broker.url, str(token.path)))
    credentials = fetcher.fetch()
    issued = fake_imds.current_credentials
    assert (credentials.access_key_id, credentials.secret_access_key, credentials.token) == (
        issued.access_key_id,
        issued.secret_access_key,
        issued.token,
    )
    assert credentials.expiration == issued.expiration
    assert credentials.account_id == "123456789012"
    assert issued.secret_access_key not in repr(credentials)
    token.path.write_text("stale-token")
    with pytest.raises(ContainerCredentialsError) as caught:
        fetcher.fetch()
    assert caught.value.status == 403
    assert caught.value.code == "InvalidToken"
    assert "changes when the broker restarts" in caught.value.hint
    fetcher.close()


def test_a_token_with_a_newline_is_refused_before_sending(
    served: tuple[Broker, TokenFile], tmp_path: Path
) -> None:
    broker, _ = served
    bad = tmp_path / "token"
    bad.write_text("abc\n")
    fetcher = ContainerCredentialsFetcher(ContainerEndpoint(broker.url, str(bad)))
    with pytest.raises(ContainerCredentialsError, match="CR or LF") as caught:
        fetcher.fetch()
    assert "printf" in caught.value.hint
    missing = ContainerCredentialsFetcher(ContainerEndpoint(broker.url, str(tmp_path / "absent")))
    with pytest.raises(ContainerCredentialsError, match="Cannot read the token file"):
        missing.fetch()


def test_nothing_listening_is_our_error_with_a_hint(
    unreachable_endpoint: str, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    fetcher = ContainerCredentialsFetcher(
        ContainerEndpoint(unreachable_endpoint + "/credentials", str(token)), attempts=2
    )
    with pytest.raises(ContainerCredentialsError, match="after 2 attempt") as caught:
        fetcher.fetch()
    assert caught.value.status is None
    assert "imdscreds serve" in caught.value.hint


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8077/credentials", "ftp://127.0.0.1/x", "not a url"]
)
def test_plain_http_off_the_host_or_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ContainerEndpoint(url, "/run/imdscreds/token")
    assert caught.value.setting == "AWS_CONTAINER_CREDENTIALS_FULL_URI"


def test_endpoint_needs_both_variables() -> None:
    assert (
        ContainerEndpoint.from_environ(
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/"}
        )
        is None
    )
    endpoint = ContainerEndpoint.from_environ(
        {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://[::1]:8077/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/run/imdscreds/token",
        }
    )
    assert endpoint == ContainerEndpoint("http://[::1]:8077/credentials", "/run/imdscreds/token")


def test_install_puts_the_engine_behind_container_role_when_the_two_variables_are_set(
    fake_imds: FakeIMDS, served: tuple[Broker, TokenFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, token = served
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", broker.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token.path))
    session = botocore.session.Session()
    imdscreds.install(session)
    providers = session.get_component("credential_provider").providers
    methods = [provider.METHOD for provider in providers]
    container = providers[methods.index("container-role")]
    assert isinstance(container, ContainerCredentialProvider)
    assert methods.index("container-role") < methods.index("iam-role")  # the chain's order kept
    fake_imds.reset_counts()
    credentials = session.get_credentials()
    assert credentials.method == "container-role"
    assert (
        credentials.get_frozen_credentials().access_key
        == fake_imds.current_credentials.access_key_id
    )
    assert credentials.engine.expires_in() > 3600
    assert fake_imds.count() == 0  # the broker already had them
    credentials.close()


def test_without_the_variables_install_leaves_botocores_container_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")
    session = botocore.session.Session()
    imdscreds.install(session)
    providers = session.get_component("credential_provider").providers
    container = next(p for p in providers if p.METHOD == "container-role")
    assert not isinstance(container, ContainerCredentialProvider)  # ECS keeps botocore's


def test_the_provider_defers_to_the_one_it_replaced_when_the_variables_are_gone() -> None:
    class Replaced:
        METHOD = "container-role"

        def load(self) -> str:
            return "replaced provider's credentials"

    provider = ContainerCredentialProvider(Replaced(), environ={})
    assert provider.load() == "replaced provider's credentials"
    assert ContainerCredentialProvider(None, environ={}).load() is None
