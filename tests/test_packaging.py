"""The package as an index and a user get it: ``python -m build`` output, metadata and contents.

The build runs without isolation (the test extra brings setuptools and build), in a copy of the
working tree, so it needs no network and leaves no ``build/`` or ``dist/`` behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"
# sha256 of the Apache License 2.0 text as the ASF publishes it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis"
)


class Built:
    def __init__(self, output: str, wheel: Path, sdist: Path) -> None:
        self.output = output
        self.wheel = wheel
        self.sdist = sdist

    def wheel_names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.namelist()

    def wheel_text(self, name: str) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(name).decode()

    def sdist_names(self) -> list[str]:
        with tarfile.open(self.sdist) as archive:
            return archive.getnames()

    def metadata(self) -> Message:
        return Parser().parsestr(self.wheel_text(f"imdscreds-{VERSION}.dist-info/METADATA"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    source = tmp_path_factory.mktemp("source") / "imdscreds"
    shutil.copytree(ROOT, source, ignore=_IGNORED)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return Built(
        output,
        out / f"imdscreds-{VERSION}-py3-none-any.whl",
        out / f"imdscreds-{VERSION}.tar.gz",
    )


def test_build_succeeds_without_deprecation_warnings(built: Built) -> None:
    assert (
        f"Successfully built imdscreds-{VERSION}.tar.gz and imdscreds-{VERSION}-py3-none-any.whl"
        in built.output
    )
    assert "Deprecat" not in built.output
    assert "License classifiers" not in built.output


def test_license_is_the_apache_2_text_and_an_spdx_expression(built: Built) -> None:
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256
    metadata = built.metadata()
    assert metadata["Metadata-Version"] in ("2.4", "2.5")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    license_in_wheel = built.wheel_text(f"imdscreds-{VERSION}.dist-info/licenses/LICENSE")
    assert hashlib.sha256(license_in_wheel.encode()).hexdigest() == APACHE_2_SHA256


def test_metadata_has_author_urls_and_classifiers(built: Built) -> None:
    metadata = built.metadata()
    assert metadata["Name"] == "imdscreds"
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Author"]
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = metadata.get_all("Classifier") or []
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert "Typing :: Typed" in classifiers
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert 'boto3>=1.26; extra == "boto3"' in (metadata.get_all("Requires-Dist") or [])


def test_long_description_opens_with_the_install_from_the_index_and_has_no_relative_links(
    built: Built,
) -> None:
    metadata = built.metadata()
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str)
    before_first_block = description.split("```", 1)[0]
    assert "pip install imdscreds" in before_first_block
    assert "pip install -e" not in before_first_block
    targets = re.findall(r"\]\(([^)]+)\)", description) + re.findall(
        r"<(?:img|a)\s[^>]*(?:src|href)=\"([^\"]+)\"", description
    )
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert relative == []


def test_wheel_holds_the_package_typed_and_nothing_else(built: Built) -> None:
    names = built.wheel_names()
    assert "imdscreds/py.typed" in names
    assert "imdscreds/testing/plugin.py" in names
    assert "imdscreds/doctor/__init__.py" in names
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"imdscreds", f"imdscreds-{VERSION}.dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_entry_points_are_the_command_and_the_pytest_plugin(built: Built) -> None:
    entry_points = built.wheel_text(f"imdscreds-{VERSION}.dist-info/entry_points.txt")
    assert "[console_scripts]\nimdscreds = imdscreds.cli:main" in entry_points
    assert "[pytest11]\nimdscreds = imdscreds.testing.plugin" in entry_points


def test_sdist_holds_sources_license_and_readme_but_no_tests_or_benchmarks(built: Built) -> None:
    names = {name.split("/", 1)[1] for name in built.sdist_names() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "imdscreds/py.typed"} <= names
    assert "imdscreds/cli.py" in names
    assert not [n for n in names if n.startswith(("tests", "benchmarks", "examples"))]
    assert not [n for n in names if "__pycache__" in n]


def test_the_installed_wheel_runs_its_command(built: Built, tmp_path: Path) -> None:
    # Not editable: the files the wheel puts in place, found before the working tree.
    target = tmp_path / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"),
            *("--target", str(target), str(built.wheel)),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import imdscreds, importlib.metadata as m; "
        "print(imdscreds.__file__); "
        "print(sorted(e.name for e in m.entry_points(group='pytest11')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    where, plugins = shown.stdout.splitlines()
    assert where.startswith(str(target))
    assert "imdscreds" in plugins
    assert (target / "imdscreds" / "py.typed").exists()
    version = subprocess.run(
        [str(target / "bin" / "imdscreds"), "--version"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.stdout.strip() == f"imdscreds {VERSION}", version.stderr
