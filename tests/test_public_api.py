"""The public API is a handful of documented names, and the README's examples run."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest

import imdscreds
from imdscreds.testing import FakeIMDS

README = Path(__file__).resolve().parent.parent / "README.md"


def test_public_names_are_pinned() -> None:
    assert sorted(imdscreds.__all__) == [
        "IMDSClient",
        "IMDSConfig",
        "IMDSCredentialProvider",
        "IMDSCredsError",
        "RefreshPolicy",
        "RefreshingCredentials",
        "RoleCredentials",
        "RoleCredentialsFetcher",
        "__version__",
        "boto3_session",
        "fetch_role_credentials",
        "install",
    ]


@pytest.mark.parametrize("name", [n for n in imdscreds.__all__ if n != "__version__"])
def test_every_public_name_resolves_and_has_a_docstring(name: str) -> None:
    value = getattr(imdscreds, name)
    assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        imdscreds.nope  # noqa: B018


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


@pytest.mark.parametrize("block", python_blocks())
def test_readme_python_examples_run_against_fake_imds(
    block: str,
    fake_imds: FakeIMDS,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "aiobotocore" in block:
        pytest.importorskip("aiobotocore", reason="the aio extra is absent")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_imds.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # an example installs into boto3's own
    exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    for credentials in fake_imds.issued_credentials:
        assert credentials.secret_access_key not in out
        assert credentials.token not in out
