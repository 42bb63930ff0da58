"""The README's command samples are real runs: each is made again here and compared.

After a change in what a command prints, regenerate them with
``IMDSCREDS_WRITE_README=1 python -m pytest tests/test_readme.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from botocore.utils import InstanceMetadataFetcher
from cli_support import serve_in_process
from test_doctor_aws import normalized  # the doctor samples' rules for what varies between runs

from imdscreds.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
WRITE = os.environ.get("IMDSCREDS_WRITE_README") == "1"


def _block(name: str) -> re.Match[str]:
    found = re.search(
        rf"<!-- sample: {re.escape(name)} -->\n```text\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert found is not None, f"the README has no sample for {name!r}"
    return found


def check_sample(name: str, output: str) -> None:
    """The README's sample ``name`` against this run's ``output`` (or rewrite it, when asked)."""
    found = _block(name)
    if WRITE:
        text = README.read_text()
        body = output.rstrip("\n") + "\n"
        README.write_text(text[: found.start(1)] + body + text[found.end(1) :])
        return
    assert normalized(found.group(1)) == normalized(output)


def test_readme_demo_sample_is_a_real_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    check_sample("imdscreds demo", capsys.readouterr().out)


def test_readme_healthy_demo_sample_is_a_real_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "healthy"]) == 0
    check_sample("imdscreds demo --scenario healthy", capsys.readouterr().out)


def test_readme_fake_imds_sample_is_botocore_fetching_for_real(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fetched: list[dict[str, str]] = []

    def botocore_fetches(endpoint: str) -> None:
        fetcher = InstanceMetadataFetcher(base_url=endpoint + "/", timeout=5, num_attempts=1)
        fetched.append(fetcher.retrieve_iam_role_credentials())

    code, out, err = serve_in_process([], botocore_fetches, capsys)
    assert code == 0
    assert fetched[0]["role_name"] == "imdscreds-demo-role"
    shown = f"$ imdscreds fake-imds\n{out}{err}"
    check_sample("imdscreds fake-imds", shown)


@pytest.mark.parametrize("name", ["imdscreds demo", "imdscreds fake-imds"])
def test_samples_hold_no_secret(name: str) -> None:
    sample = _block(name).group(1)
    assert not re.search(r'"SecretAccessKey": "(?!<hidden)', sample)
    assert not re.search(r"X-aws-ec2-metadata-token: \S", sample)
