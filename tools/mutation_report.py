"""Per-module kill table of the last `mutmut run` (read from .mutation/mutants/**/*.py.meta).

mutmut prints one running total; the rule of `make mutation` is per module (at least
`--min` per cent of each listed module's mutants killed), so this reads the result files mutmut
leaves in the stage (tools/mutation_stage.py) and prints one row per module. A mutant with no
test that reaches it counts as a survivor. Exits 1 when a module is under the threshold or has
no result at all.

A mutant no test can tell from the original (an equivalent mutant) is left out of the count
only when a comment in a test file names it and says why, in this form (further numbers of the
same function may follow the first full name, the reason may go on in the comment lines below):

    # equivalent: causeflow.webhook.ssrf.x__parse_v4_number__mutmut_2, 3 -- why
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

from mutation_stage import STAGE, source_roots, split, staged

ROOT = Path(__file__).resolve().parent.parent

# mutmut's exit codes (mutmut/stats.py): 1 and 3 are a failing test run, 37 the type checker.
KILLED = {1, 3, 37}
TIMEOUT = {24, -24, 36, 152, 255}
NO_TESTS = {5, 33}


EQUIVALENT = re.compile(r"#\s*equivalent:\s*(?P<names>[^\n]*?)\s+--\s+\S")
MUTANT = re.compile(r"^(?P<prefix>[\w.ǁ]+__mutmut_)\d+$")


def declared_equivalent(tests: Path) -> set[str]:
    """Mutant names that a test file's comment declares equivalent, with a reason."""
    names: set[str] = set()
    for path in tests.rglob("*.py"):
        for match in EQUIVALENT.finditer(path.read_text(encoding="utf-8")):
            prefix = ""
            for item in re.split(r"[,\s]+", match["names"].strip()):
                full = MUTANT.match(item)
                if full:
                    prefix = full["prefix"]
                    names.add(item)
                elif item.isdigit() and prefix:
                    names.add(prefix + item)
    return names


def listed_modules(root: Path = ROOT) -> list[str]:
    """The `only_mutate` paths of [tool.mutmut] in pyproject.toml."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["mutmut"]["only_mutate"])


def label(module: str) -> str:
    """A module's short name in the table: its path inside its root, without `causeflow/`."""
    return split(module, source_roots())[1].removeprefix("causeflow/")


def meta_of(stage: Path, module: str) -> Path:
    return stage / "mutants" / (staged(module) + ".meta")


def classify(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in TIMEOUT:
        return "timeout"
    if code in NO_TESTS:
        return "no tests"
    if code == 0:
        return "survived"
    return "not run" if code is None else "suspicious"


def statuses(meta: Path, equivalent: set[str]) -> dict[str, str]:
    """Each mutant of one module and what became of it."""
    data = json.loads(meta.read_text(encoding="utf-8"))
    out = {}
    for name, code in data["exit_code_by_key"].items():
        status = classify(code)
        if status not in ("killed", "timeout") and name in equivalent:
            status = "equivalent"
        out[name] = status
    return out


def table(
    stage: Path, modules: list[str], minimum: float, equivalent: set[str]
) -> tuple[list[str], bool]:
    """The table's lines and whether every module reached `minimum` per cent."""
    header = (
        f"{'module':<34} {'mutants':>7} {'killed':>6} {'timeout':>7} {'equiv':>5}"
        f" {'survived':>8} {'kill %':>6}"
    )
    lines = [header, "-" * len(header)]
    ok = True
    total: Counter[str] = Counter()
    for module in modules:
        meta = meta_of(stage, module)
        if not meta.exists():
            lines.append(f"{label(module):<34} no result (run `make mutation`)")
            ok = False
            continue
        counts = Counter(statuses(meta, equivalent).values())
        total += counts
        row_ok, line = _row(label(module), counts, minimum)
        ok = ok and row_ok
        lines.append(line)
    lines.append("-" * len(header))
    lines.append(_row("all", total, minimum)[1])
    return lines, ok


def _row(name: str, counts: Counter[str], minimum: float) -> tuple[bool, str]:
    mutants = sum(counts.values())
    # A timeout is a kill: the mutant made the tests hang, which a run notices. Declared
    # equivalent mutants leave the count: no test can kill them.
    killed = counts["killed"] + counts["timeout"]
    counted = mutants - counts["equivalent"]
    survived = counted - killed
    rate = 100.0 * killed / counted if counted else 100.0
    ok = rate >= minimum
    mark = "" if ok else "  < minimum"
    line = (
        f"{name:<34} {mutants:>7} {counts['killed']:>6} {counts['timeout']:>7} "
        f"{counts['equivalent']:>5} {survived:>8} {rate:>6.1f}{mark}"
    )
    return ok, line


def survivors(stage: Path, modules: list[str], equivalent: set[str]) -> list[str]:
    names = []
    for module in modules:
        meta = meta_of(stage, module)
        if meta.exists():
            found = statuses(meta, equivalent).items()
            names += [k for k, v in found if v not in ("killed", "timeout", "equivalent")]
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=90.0, help="per-module kill %% required")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args(argv)
    modules = listed_modules()
    equivalent = declared_equivalent(ROOT / "tests")
    lines, ok = table(STAGE, modules, args.min, equivalent)
    print("\n".join(lines))
    alive = survivors(STAGE, modules, equivalent)
    if args.survivors and alive:
        print("\n".join(["", "surviving mutants (`cd .mutation && mutmut show NAME`):", *alive]))
    if not ok:
        print(f"\nmutation: a module is under {args.min:g} % killed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
