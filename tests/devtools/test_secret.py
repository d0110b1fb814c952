"""The local signing secret of `causeflow listen`: where it lives, its mode, its stability."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from causeflow.devtools import ToolError
from causeflow.devtools.secret import load_or_create_secret, secret_path
from causeflow.webhook.signing import standard_key

pytestmark = pytest.mark.unit


def test_location_follows_xdg(tmp_path: Path) -> None:
    assert secret_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "causeflow/listen-secret"
    assert secret_path({"HOME": "/home/dev"}) == Path("/home/dev/.config/causeflow/listen-secret")
    assert secret_path({"XDG_CONFIG_HOME": "", "HOME": "/h"}) == Path(
        "/h/.config/causeflow/listen-secret"
    )


def test_created_once_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "causeflow" / "listen-secret"
    first = load_or_create_secret(path)
    assert first.startswith("whsec_") and len(standard_key(first)) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["listen-secret"]  # no temp file left


def test_a_loosened_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "listen-secret"
    path.write_text("a-plain-secret-of-20-chars\n")
    path.chmod(0o644)
    assert load_or_create_secret(path) == "a-plain-secret-of-20-chars"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["whsec_not base64!", "short", ""])
def test_an_unusable_file_is_a_one_line_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "listen-secret"
    path.write_text(content)
    with pytest.raises(ToolError, match="delete it"):
        load_or_create_secret(path)


def test_an_unwritable_place_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ToolError, match="cannot (read|create)"):
        load_or_create_secret(blocker / "causeflow" / "listen-secret")
