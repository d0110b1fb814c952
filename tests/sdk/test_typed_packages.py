"""The SDK and the wire models ship their annotations to type checkers (PEP 561)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["sdk", "models"])
def test_package_carries_py_typed_marker(package: str) -> None:
    assert resources.files(f"causeflow.{package}").joinpath("py.typed").is_file()


@pytest.mark.parametrize("package", ["sdk", "models"])
def test_marker_is_declared_as_package_data(package: str) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"{package}/py.typed" in config["tool"]["setuptools"]["package-data"]["causeflow"]
