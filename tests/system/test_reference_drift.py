"""`docs/reference.md` against the code: its generated parts are current, every error code the
service can answer is listed, and every `docs/reference.md §N` citation names a real section."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.reference import reference_text, section, section_numbers

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CITED_IN = (
    "src",
    "sdk",
    "tests",
    "bench",
    "examples",
    "tools",
    "docs",
    "README.md",
    "ARCHITECTURE.md",
)
CITATION = re.compile(r"docs/reference\.md §(\d+(?:\.\d+)?)")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "tools/gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_parts_are_current() -> None:
    gen = generator()
    stale = []
    for rel, text in gen.outputs(ROOT).items():
        path = ROOT / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(rel))
    assert not stale, (
        f"generated reference files differ from the code: {', '.join(stale)}; "
        "run `make reference` (or `python tools/gen_reference.py`) and commit the result"
    )


def test_a_missing_marker_is_reported() -> None:
    gen = generator()
    with pytest.raises(SystemExit, match="generated:begin routes"):
        gen.splice("no markers here", "routes", "| table |\n")


def error_codes_in_source() -> set[str]:
    """Every `error` code the service's own code can answer with (the dashboard's pages and the
    client library are clients, not the API)."""
    patterns = [
        re.compile(r'\bcode\s*=\s*"([a-z_]+)"'),  # raise X(..., code="...") and class X: code = ""
        re.compile(r'status, code = \d+, "([a-z_]+)"'),  # the error classes
        re.compile(r'^\s+\d{3}: "([a-z_]+)"', re.MULTILINE),  # the status -> code table
        re.compile(r'error_response\(\s*\d+,\s*"([a-z_]+)"'),
    ]
    not_found = re.compile(r'\bwhat="([a-z_]+)"')  # db.lookup.tenant_row: `<what>_not_found`
    codes: set[str] = set()
    for path in (ROOT / "src/causeflow").rglob("*.py"):
        if {"dashboard", "sdk"} & set(path.relative_to(ROOT / "src/causeflow").parts):
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            codes.update(pattern.findall(text))
        codes.update(f"{what}_not_found" for what in not_found.findall(text))
    return codes


def test_every_error_code_is_listed() -> None:
    codes = error_codes_in_source()
    assert {"validation_error", "invalid_transition", "subscription_not_found"} <= codes
    listed = section("8.8")
    missing = sorted(code for code in codes if f"`{code}`" not in listed)
    assert not missing, f"add these error codes to docs/reference.md §8.8: {missing}"


def cited_files() -> list[Path]:
    files: list[Path] = []
    for name in CITED_IN:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        else:
            files += [p for p in path.rglob("*") if p.suffix in (".py", ".md", ".html")]
    return files


def test_every_citation_names_a_section() -> None:
    numbers = section_numbers(reference_text())
    assert {"1.2", "5.1", "7.2", "8.8"} <= numbers
    broken = []
    for path in cited_files():
        for number in CITATION.findall(path.read_text(encoding="utf-8")):
            if number not in numbers:
                broken.append(f"{path.relative_to(ROOT)}: §{number}")
    assert not broken, f"citations of sections docs/reference.md does not have: {broken}"
