"""The SDK and the wire models ship their annotations to type checkers (PEP 561)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_package_carries_py_typed_marker() -> None:
    # one marker at the top covers the client and its event models (causeflow_sdk.models)
    assert resources.files("causeflow_sdk").joinpath("py.typed").is_file()


def test_marker_is_declared_as_package_data() -> None:
    config = tomllib.loads((ROOT / "sdk" / "python" / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["causeflow_sdk"]
