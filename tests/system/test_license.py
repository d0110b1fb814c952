"""The project states its license: the package metadata and the LICENSE file agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_package_metadata_declares_apache_2():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]


def test_license_file_holds_the_full_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    head = [line.strip() for line in text.splitlines()[:4] if line.strip()]
    assert head[:2] == ["Apache License", "Version 2.0, January 2004"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_build_backend_understands_license_expressions():
    # A license given as an SPDX expression needs setuptools 77 or newer at build time.
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert "setuptools>=77" in requires
