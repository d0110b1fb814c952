"""Per-module kill table of the last `mutmut run` (read from mutants/**/*.py.meta).

mutmut prints one running total; the rule of `make mutation` is per module (at least
`--min` per cent of each listed module's mutants killed), so this reads the result files mutmut
leaves in mutants/ and prints one row per module. A mutant with no test that reaches it counts
as a survivor. Exits 1 when a module is under the threshold or has no result at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# mutmut's exit codes (mutmut/stats.py): 1 and 3 are a failing test run, 37 the type checker.
KILLED = {1, 3, 37}
TIMEOUT = {24, -24, 36, 152, 255}
NO_TESTS = {5, 33}


def listed_modules(root: Path = ROOT) -> list[str]:
    """The `only_mutate` paths of [tool.mutmut] in pyproject.toml."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["mutmut"]["only_mutate"])


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


def module_counts(meta: Path) -> Counter[str]:
    data = json.loads(meta.read_text(encoding="utf-8"))
    return Counter(classify(code) for code in data["exit_code_by_key"].values())


def table(root: Path, modules: list[str], minimum: float) -> tuple[list[str], bool]:
    """The table's lines and whether every module reached `minimum` per cent."""
    header = (
        f"{'module':<38} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'kill %':>6}"
    )
    lines = [header, "-" * len(header)]
    ok = True
    total: Counter[str] = Counter()
    for module in modules:
        meta = root / "mutants" / (module + ".meta")
        if not meta.exists():
            lines.append(f"{module:<38} no result (run `make mutation`)")
            ok = False
            continue
        counts = module_counts(meta)
        total += counts
        row_ok, line = _row(module.removeprefix("src/causeflow/"), counts, minimum)
        ok = ok and row_ok
        lines.append(line)
    lines.append("-" * len(header))
    lines.append(_row("all", total, minimum)[1])
    return lines, ok


def _row(name: str, counts: Counter[str], minimum: float) -> tuple[bool, str]:
    mutants = sum(counts.values())
    # A timeout is a kill: the mutant made the tests hang, which a run notices.
    killed = counts["killed"] + counts["timeout"]
    survived = mutants - killed
    rate = 100.0 * killed / mutants if mutants else 100.0
    ok = rate >= minimum
    mark = "" if ok else "  < minimum"
    line = (
        f"{name:<38} {mutants:>7} {counts['killed']:>6} {counts['timeout']:>7} "
        f"{survived:>8} {rate:>6.1f}{mark}"
    )
    return ok, line


def survivors(root: Path, modules: list[str]) -> list[str]:
    names = []
    for module in modules:
        meta = root / "mutants" / (module + ".meta")
        if meta.exists():
            data = json.loads(meta.read_text(encoding="utf-8"))
            names += [k for k, v in data["exit_code_by_key"].items() if classify(v) != "killed"]
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=90.0, help="per-module kill %% required")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args(argv)
    modules = listed_modules()
    lines, ok = table(ROOT, modules, args.min)
    print("\n".join(lines))
    if args.survivors:
        print("\n".join(["", "surviving mutants (`mutmut show NAME`):", *survivors(ROOT, modules)]))
    if not ok:
        print(f"\nmutation: a module is under {args.min:g} % killed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
