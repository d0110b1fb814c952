"""Reading `docs/reference.md` from tests: its numbered sections and the tables inside them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"

_HEADING = re.compile(r"^(#{2,3}) (\d+(?:\.\d+)?)\.? ", re.MULTILINE)


def reference_text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def section_numbers(text: str | None = None) -> set[str]:
    """Every numbered heading of the reference: `5` for `## 5. …`, `5.1` for `### 5.1 …`."""
    return {m.group(2) for m in _HEADING.finditer(text or reference_text())}


def section(number: str, text: str | None = None) -> str:
    """The text of section `number` (its heading included), up to the next heading of the same
    or a higher level."""
    text = text or reference_text()
    found = [m for m in _HEADING.finditer(text) if m.group(2) == number]
    assert found, f"docs/reference.md has no section {number}"
    start = found[0]
    level = len(start.group(1))
    end = len(text)
    for m in _HEADING.finditer(text, start.end()):
        if len(m.group(1)) <= level:
            end = m.start()
            break
    return text[start.start() : end]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in `text`, without header and separator rows."""
    lines = [line.strip() for line in text.splitlines()]

    def separator(line: str) -> bool:
        return line.startswith("|") and set(line) <= set("|-: ")

    rows = []
    for i, line in enumerate(lines):
        if not line.startswith("|") or separator(line):
            continue
        if i + 1 < len(lines) and separator(lines[i + 1]):
            continue  # a header row
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows
