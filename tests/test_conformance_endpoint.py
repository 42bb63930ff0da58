"""The AWS SDKs' shared IMDS endpoint-resolution cases, one test each (DESIGN.md §3).

The JSON lives in ``shared/conformance`` beside the repository (``<clone>/../shared``), as in CI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imdscreds.config import IMDSConfig
from imdscreds.errors import ConfigError

CASES_FILE = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "conformance"
    / "imds-endpoint-tests.json"
)


def _load_cases() -> list[Any]:
    if not CASES_FILE.is_file():
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(reason=f"conformance file not found at {CASES_FILE}"),
                id="conformance-file-missing",
            )
        ]
    cases = json.loads(CASES_FILE.read_text(encoding="utf-8"))["tests"]
    return [pytest.param(case, id=case["docs"]) for case in cases]


def test_conformance_file_has_cases() -> None:
    if not CASES_FILE.is_file():
        pytest.skip(f"conformance file not found at {CASES_FILE}")
    assert json.loads(CASES_FILE.read_text(encoding="utf-8"))["tests"], "no cases in the file"


@pytest.mark.parametrize("case", _load_cases())
def test_endpoint_resolution_matches_the_sdks(case: dict[str, Any], tmp_path: Path) -> None:
    for name, content in case["fs"].items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    environ = dict(case["env"])
    if "AWS_CONFIG_FILE" in environ:
        environ["AWS_CONFIG_FILE"] = str(tmp_path / environ["AWS_CONFIG_FILE"])
    else:
        # Never fall back to the real ~/.aws/config of whoever runs the tests.
        environ["AWS_CONFIG_FILE"] = str(tmp_path / "no-such-config")

    def resolve() -> IMDSConfig:
        return IMDSConfig.resolve(
            endpoint=case.get("endpoint_override"),
            endpoint_mode=case.get("mode_override"),
            environ=environ,
        )

    result = case["result"]
    if "Ok" in result:
        assert resolve().token_url == result["Ok"]
    else:
        with pytest.raises(ConfigError) as raised:
            resolve()
        assert result["Err"] in str(raised.value)
