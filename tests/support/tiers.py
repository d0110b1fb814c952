"""The test tiers, as pytest markers: what a test needs in order to run.

Every test carries exactly one of them (a module's `pytestmark`, or a decorator on each test of a
module whose tests differ), so `pytest -m unit` and the other selections are complete:

- `unit`: no database, network or process; pure code and files under `tmp_path`.
- `integration`: a real database (SQLite or PostgreSQL) or loopback HTTP, all in the test's process.
- `process`: starts a server, worker or another external process.
- `browser`: drives headless Chromium.

tests/conftest.py records, for the collected tests, those with no tier or more than one;
tests/support/test_tiers.py fails while that list is not empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import pytest

TIERS = ("unit", "integration", "process", "browser")

PROBLEMS = pytest.StashKey[list[str]]()


class Marked(Protocol):
    nodeid: str

    def iter_markers(self) -> Iterable[pytest.Mark]: ...


def tier_problems(items: Iterable[Marked]) -> list[str]:
    """One line per test whose tier markers are not exactly one."""
    problems = []
    for item in items:
        tiers = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
        if len(tiers) != 1:
            found = ", ".join(tiers) or "none"
            problems.append(f"{item.nodeid}: tier markers {found} (want one of {', '.join(TIERS)})")
    return problems
