"""ARCHITECTURE.md names only modules and files that exist.

Every `src/causeflow/...` path, every backticked path (relative to `src/causeflow/` unless it
starts with `tests/`, `docs/` or `tools/`; a bare file name such as `pyproject.toml` may also be
one of the repository's top-level files) and every backticked dotted `causeflow.x.y` module in
the document must exist in the tree, so a move or a rename cannot leave the document behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "causeflow"
DOCUMENT = ROOT / "ARCHITECTURE.md"
ROOTED = ("tests/", "docs/", "tools/", "src/", "sdk/")

SOURCE_PATH = re.compile(r"src/causeflow/[\w/.]*[\w/]")
BACKTICKED = re.compile(r"`([^`\s]+)`")
FILE_PATH = re.compile(r"[\w.-]+(?:/[\w.-]+)*(?:\.(?:py|md|toml|txt)|/)")
DOTTED_MODULE = re.compile(r"causeflow(?:\.\w+)+")


def named_paths(text: str) -> set[str]:
    """Paths relative to the repository root."""
    found = set(SOURCE_PATH.findall(text))
    for token in BACKTICKED.findall(text):
        if FILE_PATH.fullmatch(token):
            found.add(token if token.startswith(ROOTED) else f"src/causeflow/{token}")
    return found


def named_modules(text: str) -> set[str]:
    return {t for t in BACKTICKED.findall(text) if DOTTED_MODULE.fullmatch(t)}


def module_exists(dotted: str) -> bool:
    base = PACKAGE.joinpath(*dotted.split(".")[1:])
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def path_exists(path: str) -> bool:
    """`path` (from the root) exists; a bare name under `src/causeflow/` may be a top-level file."""
    name = path.removeprefix("src/causeflow/")
    return (ROOT / path).exists() or ("/" not in name and (ROOT / name).is_file())


def test_every_path_named_exists() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    paths = named_paths(text)
    assert "src/causeflow/incident/repository.py" in paths  # the extraction sees the document
    missing = sorted(path for path in paths if not path_exists(path))
    assert not missing, "ARCHITECTURE.md names paths that do not exist: " + ", ".join(missing)


def test_every_module_named_exists() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    modules = named_modules(text)
    assert "causeflow.incident.tables" in modules
    missing = sorted(m for m in modules if not module_exists(m))
    assert not missing, "ARCHITECTURE.md names modules that do not exist: " + ", ".join(missing)


def test_the_extraction_finds_what_a_document_names() -> None:
    text = (
        "see `webhook/ssrf.py`, `tests/webhook/test_ssrf.py`, `db/migrations/`, `/v1/events`, "
        "`docs/reference.md`, src/causeflow/event/log.py, `causeflow.event.tables` and "
        "`append_events`"
    )
    assert named_paths(text) == {
        "src/causeflow/webhook/ssrf.py",
        "tests/webhook/test_ssrf.py",
        "src/causeflow/db/migrations/",
        "docs/reference.md",
        "src/causeflow/event/log.py",
    }
    assert named_modules(text) == {"causeflow.event.tables"}
    assert not module_exists("causeflow.event.nothing")
    assert path_exists("src/causeflow/pyproject.toml")  # a top-level file named bare
    assert not path_exists("src/causeflow/tables.py")
