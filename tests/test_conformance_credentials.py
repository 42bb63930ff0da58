"""The AWS SDKs' shared cases for role discovery, run against imdscreds' fetcher.

Each case lists, in order, every GET a provider must make over a series of fetches, with IMDS's
answers; token PUTs are not listed (they are answered here and counted apart).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentialsFetcher
from imdscreds.errors import MetadataDisabledError, RoleNotFoundError
from imdscreds.imds import IMDSClient

CASES_FILE = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "conformance"
    / "imds-credentials-provider-tests.json"
)
ENDPOINT = "http://127.0.0.1:9"


def _cases() -> list[Any]:
    if not CASES_FILE.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{CASES_FILE} is absent"))]
    tests = json.loads(CASES_FILE.read_text())["tests"]
    return [pytest.param(case, id=case["summary"]) for case in tests]


def _normalise(path: str) -> str:
    return path.rstrip("/")


@pytest.mark.parametrize("case", _cases())
def test_credentials_provider_conformance(case: dict[str, Any]) -> None:
    expectations = list(case["expectations"])
    seen: list[str] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        path = _normalise(request.path_url)
        seen.append(path)
        index = len(seen) - 1
        assert index < len(expectations), f"unexpected extra GET {path}"
        expected = expectations[index]
        assert path == _normalise(expected["get"]), f"GET #{index + 1}"
        response = expected["response"]
        body = response.get("body", "")
        text = body if isinstance(body, str) else json.dumps(body)
        return response["status"], {}, text

    config = IMDSConfig.resolve(
        endpoint=ENDPOINT,
        instance_profile_name=case["config"]["ec2InstanceProfileName"],
        environ=case["config"].get("envVars", {}),
        config_file="/nonexistent/imdscreds-conformance-config",
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.PUT, f"{ENDPOINT}/latest/api/token", body="conformance-token")
        mock.add_callback(
            responses.GET,
            re.compile(rf"{re.escape(ENDPOINT)}/latest/meta-data/.*"),
            callback=answer,
        )
        client = IMDSClient(config)
        fetcher = RoleCredentialsFetcher(client)
        for outcome in case["outcomes"]:
            expected = outcome["result"]
            if expected == "credentials":
                credentials = fetcher.fetch()
                assert credentials.account_id == outcome.get("accountId")
                assert credentials.access_key_id.startswith("ASIA")
            elif expected == "no credentials":
                with pytest.raises(MetadataDisabledError):
                    fetcher.fetch()
            elif expected == "invalid profile":
                with pytest.raises(RoleNotFoundError):
                    fetcher.fetch()
            else:  # pragma: no cover - a new kind of outcome in the shared file
                pytest.fail(f"unknown outcome {expected!r}")
        client.close()
    assert seen == [_normalise(e["get"]) for e in expectations]
