"""docs/events.md explains every event type of the catalog, under its family's heading, and
names no type the catalog does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from causeflow_sdk.models.catalog import CATALOG

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "events.md"
FAMILIES = sorted({name.split(".", 1)[0] for name in CATALOG})


def sections() -> dict[str, str]:
    """The doc's `## ` sections by heading."""
    parts = re.split(r"^## (.+)$", DOC.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def section_of(family: str) -> str:
    found = [body for heading, body in sections().items() if f"`{family}.*`" in heading]
    assert len(found) == 1, f"docs/events.md needs one section headed with `{family}.*`"
    return found[0]


def test_every_catalog_type_is_explained_in_its_familys_section() -> None:
    missing = []
    for name in CATALOG:
        rows = [
            line
            for line in section_of(name.split(".", 1)[0]).splitlines()
            if line.startswith(f"| `{name}` |")
        ]
        if len(rows) != 1:
            missing.append(name)
    assert not missing, f"give each of these one row in its family's table: {missing}"


def test_the_doc_names_no_type_outside_the_catalog() -> None:
    named = set(re.findall(rf"`((?:{'|'.join(FAMILIES)})\.[a-z_]+)`", DOC.read_text()))
    assert named, "the doc names no event type at all"
    assert named <= set(CATALOG), f"not in the catalog: {sorted(named - set(CATALOG))}"


def test_the_doc_is_linked_from_the_readme() -> None:
    assert "docs/events.md" in (ROOT / "README.md").read_text()
