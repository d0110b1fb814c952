"""Whether the last commit calls for `make mutation` (exit 0: yes, 1: no), for CI.

A full mutation run takes minutes on two cores, so CI runs it only when the commit it tests
changed, against its first parent, something the run depends on: a mutated module, a test
file of the fast selection, a conftest.py or a module of tests/support, the mutation tools, or
the [tool.mutmut] table itself. Without a parent to compare with (a first commit, a shallow
clone) it says yes. A dependency upgrade does not trigger it: run `make mutation` by hand after
one.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {
    "tools/mutate_tables.py",
    "tools/mutation_report.py",
    "tools/mutation_needed.py",
    "tools/mutation_stage.py",
}


def git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def mutmut_table(pyproject: str) -> dict[str, Any]:
    return dict(tomllib.loads(pyproject).get("tool", {}).get("mutmut", {}))


def reason() -> str | None:
    """Why a run is needed, or None when the last commit touched nothing it depends on."""
    changed = git("diff", "--name-only", "HEAD~1", "HEAD")
    before = git("show", "HEAD~1:pyproject.toml")
    if changed is None or before is None:
        return "no parent commit to compare with"
    table = mutmut_table((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    if table != mutmut_table(before):
        return "[tool.mutmut] changed"
    watched = set(table.get("only_mutate", [])) | set(
        table.get("pytest_add_cli_args_test_selection", [])
    )
    for path in changed.split():
        support = path.startswith("tests/support/") or path.endswith("conftest.py")
        if path in watched or path in TOOLS or support:
            return f"{path} changed"
    return None


def main() -> int:
    why = reason()
    print(f"mutation testing: {'needed, ' + why if why else 'not needed by the last commit'}")
    return 0 if why else 1


if __name__ == "__main__":
    sys.exit(main())
