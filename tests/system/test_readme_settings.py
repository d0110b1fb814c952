"""The README's settings table names every CAUSEFLOW_* setting the service reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from causeflow.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented():
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"CAUSEFLOW_{name.upper()}"
        for name in Settings.model_fields
        if f"CAUSEFLOW_{name.upper()}" not in readme
    ]
    assert not missing, f"add these to the README's settings table: {missing}"
