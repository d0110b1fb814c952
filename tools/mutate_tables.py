"""Mutation testing of the module-level tables of the pure cores, which mutmut leaves alone.

mutmut mutates code inside functions; the rules that live in module-level constants (SSRF
forbidden ranges, reserved header names, lifecycle transition tables, the default retry
schedule, size limits) it never touches. For every entry of such a table this tool removes it,
and for every number it moves it one step either way, in a temporary copy of the source roots
(`source_paths`: the server's src/ and the SDK's sdk/python/src/, merged into one directory),
then runs the module's fast tests against that copy. A mutant that every test survives is
reported, and the exit status is 1 when any survives.

The modules are [tool.mutmut] `only_mutate` of pyproject.toml; a module's tests are the files
of `pytest_add_cli_args_test_selection` that import it. A constant is a module-level
assignment to an UPPER_CASE name (leading underscore allowed). Tuples nested inside a table
are records (a header name and its value, a trigger's sources and target) and keep their
shape; sets, lists, top-level tuples and dicts lose one entry at a time.

Each mutant runs in a forked child of this process, which has pytest and the heavy third-party
libraries imported already; the child imports causeflow afresh from its own copy.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mutation_stage import source_roots, split

ROOT = Path(__file__).resolve().parent.parent
ROOTS = source_roots(ROOT)
CONSTANT_NAME = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
# The warm-up imports pytest plugins (hypothesis, anyio) before pytest can mark them for
# assertion rewriting; its warning about that is no verdict.
PYTEST_ARGS = [
    *("-x", "-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception"),
    *("-W", "ignore::pytest.PytestAssertRewriteWarning"),
]
# Run in a subprocess, this collects the selection and prints the modules that took, except
# causeflow's and the tests' own: the parent imports those before forking so that each child
# only imports causeflow itself (seconds of import time saved per mutant).
_LIST_IMPORTS = """
import sys, pytest
pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", *sys.argv[1:]])
print("\\n".join(m for m in list(sys.modules) if not m.startswith(("causeflow", "tests"))))
"""


@dataclass(frozen=True)
class Edit:
    """One change to one table: `apply` performs it on the parsed module it was found in."""

    table: str
    line: int
    what: str
    apply: Callable[[], None]


@dataclass(frozen=True)
class Mutant:
    module: str  # path relative to the repository, e.g. sdk/python/src/causeflow_sdk/signatures.py
    index: int  # position among the module's edits
    table: str
    line: int
    what: str


def _remove_element(node: ast.List | ast.Tuple | ast.Set, i: int) -> Callable[[], None]:
    return lambda: node.elts.pop(i) and None


def _remove_key(node: ast.Dict, i: int) -> Callable[[], None]:
    def apply() -> None:
        node.keys.pop(i)
        node.values.pop(i)

    return apply


def _set_number(node: ast.Constant, value: float) -> Callable[[], None]:
    def apply() -> None:
        node.value = value

    return apply


def _number_edits(table: str, node: ast.Constant) -> Iterator[Edit]:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    changed = (value + 1, value - 1) if isinstance(value, int) else (value * 1.5, value * 0.5)
    for new in changed:
        yield Edit(table, node.lineno, f"{value!r} -> {new!r}", _set_number(node, new))


def _visit(table: str, node: ast.expr, nested: bool) -> Iterator[Edit]:
    """The edits inside one constant's value; `nested` is False for the value itself."""
    if isinstance(node, ast.Constant):
        yield from _number_edits(table, node)
    elif isinstance(node, ast.List | ast.Set | ast.Tuple):
        if not (nested and isinstance(node, ast.Tuple)):
            for i, elt in enumerate(node.elts):
                what = f"remove {ast.unparse(elt)}"
                yield Edit(table, elt.lineno, what, _remove_element(node, i))
        for elt in node.elts:
            yield from _visit(table, elt, True)
    elif isinstance(node, ast.Dict):
        for i, key in enumerate(node.keys):
            if key is not None:
                what = f"remove key {ast.unparse(key)}"
                yield Edit(table, key.lineno, what, _remove_key(node, i))
        for key, value in zip(node.keys, node.values, strict=True):
            label = table if key is None else f"{table}[{ast.unparse(key)}]"
            yield from _visit(label, value, True)
    elif isinstance(node, ast.Call):
        for arg in node.args:
            yield from _visit(table, arg, nested)
    elif isinstance(node, ast.BinOp):
        yield from _visit(table, node.left, nested)
        yield from _visit(table, node.right, nested)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        yield from _number_edits(table, node.operand)


def table_edits(tree: ast.Module) -> list[Edit]:
    """Every edit of the module's constants, in source order (stable across parses)."""
    edits: list[Edit] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name) and CONSTANT_NAME.match(target.id):
            edits += _visit(target.id, value, False)
    return edits


def mutated_source(path: Path, index: int) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    table_edits(tree)[index].apply()
    return ast.unparse(tree)


def mutants_of(module: str) -> list[Mutant]:
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    return [Mutant(module, i, e.table, e.line, e.what) for i, e in enumerate(table_edits(tree))]


def inner(module: str) -> str:
    """The module's path inside its source root, e.g. causeflow_sdk/signatures.py."""
    return split(module, ROOTS)[1]


def dotted(module: str) -> str:
    return inner(module).removesuffix(".py").replace("/", ".")


def imports_of(test_file: Path) -> set[str]:
    """The modules a test file imports (`from causeflow.x import y` names both)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(test_file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def config() -> tuple[list[str], list[str]]:
    """The mutated modules and the fast test selection, from [tool.mutmut]."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mutmut = data["tool"]["mutmut"]
    return list(mutmut["only_mutate"]), list(mutmut["pytest_add_cli_args_test_selection"])


def tests_of(module: str, selection: list[str]) -> list[str]:
    name = dotted(module)
    return [t for t in selection if name in imports_of(ROOT / t)]


def _child(mutant: Mutant | None, module: str, tests: list[str], work: Path, timeout: int) -> int:
    """In a forked child: copy the source roots into `work`, apply the mutant, run the tests.

    The exit status is the verdict; pytest's output goes to `work`/pytest.log.
    """
    signal.alarm(timeout)
    copy = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for source in ROOTS:
        shutil.copytree(ROOT / source, copy, ignore=ignore, dirs_exist_ok=True)
    if mutant is not None:
        (copy / inner(module)).write_text(
            mutated_source(ROOT / module, mutant.index), encoding="utf-8"
        )
    originals = {(ROOT / source).resolve() for source in ROOTS}
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in originals]
    sys.path.insert(0, str(copy))
    importlib.invalidate_caches()
    log = os.open(work / "pytest.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    import pytest

    code = int(pytest.main([*PYTEST_ARGS, *tests]))
    loaded = sys.modules.get(dotted(module))
    if loaded is None or not str(loaded.__file__).startswith(str(copy)):
        print(f"{dotted(module)} was not imported from {copy}")
        return 99  # the tests did not run against the copy: a setup error, not a verdict
    return code


def run_one(mutant: Mutant | None, module: str, tests: list[str], work: Path, timeout: int) -> int:
    """Fork, run one mutant (or none: the unmutated baseline) in `work`; the child's pid."""
    work.mkdir(parents=True)
    pid = os.fork()
    if pid == 0:
        code = 98
        try:
            code = _child(mutant, module, tests, work, timeout)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


@dataclass
class Verdict:
    mutant: Mutant
    status: int  # os.waitstatus_to_exitcode: 0 survived, 1 failed (killed), <0 a signal

    @property
    def survived(self) -> bool:
        return self.status == 0

    @property
    def broken(self) -> bool:
        return self.status in (2, 3, 4, 5, 98, 99)


def _work_dir(root: Path, mutant: Mutant | None, module: str) -> Path:
    name = dotted(module) + (f".{mutant.index}" if mutant is not None else ".baseline")
    return root / name


def run_all(
    jobs: list[tuple[Mutant, list[str]]], root: Path, parallel: int, timeout: int
) -> list[Verdict]:
    running: dict[int, Mutant] = {}
    verdicts: list[Verdict] = []
    queue = list(jobs)
    while queue or running:
        while queue and len(running) < parallel:
            mutant, tests = queue.pop(0)
            work = _work_dir(root, mutant, mutant.module)
            running[run_one(mutant, mutant.module, tests, work, timeout)] = mutant
        pid, status = os.wait()
        verdict = Verdict(running.pop(pid), os.waitstatus_to_exitcode(status))
        work = _work_dir(root, verdict.mutant, verdict.mutant.module)
        if verdict.survived or verdict.broken:
            shutil.rmtree(work / "src", ignore_errors=True)  # keep pytest.log
        else:
            shutil.rmtree(work, ignore_errors=True)
        verdicts.append(verdict)
    return sorted(verdicts, key=lambda v: (v.mutant.module, v.mutant.index))


def baseline_ok(modules: dict[str, list[str]], root: Path, timeout: int) -> bool:
    """The unmutated copy passes each module's tests (else no verdict means anything)."""
    ok = True
    for module, tests in modules.items():
        work = _work_dir(root, None, module)
        _, status = os.waitpid(run_one(None, module, tests, work, timeout), 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            print(f"{module}: its tests fail unmutated (exit {code}), see {work}/pytest.log")
            ok = False
        else:
            shutil.rmtree(work, ignore_errors=True)
    return ok


def report(verdicts: list[Verdict], modules: list[str], root: Path) -> bool:
    header = f"{'tables of':<38} {'mutants':>7} {'killed':>6} {'survived':>8}"
    print(header)
    print("-" * len(header))
    for module in modules:
        mine = [v for v in verdicts if v.mutant.module == module]
        alive = sum(v.survived or v.broken for v in mine)
        name = inner(module).removeprefix("causeflow/")
        print(f"{name:<38} {len(mine):>7} {len(mine) - alive:>6} {alive:>8}")
    bad = [v for v in verdicts if v.survived or v.broken]
    for v in bad:
        m = v.mutant
        kind = "survived" if v.survived else f"could not run (exit {v.status})"
        print(f"  {kind}: {m.module}:{m.line} {m.table}: {m.what}")
    if bad:
        print(f"pytest output of these: {root}/<module>.<n>/pytest.log")
    return not bad


def warm_up(selection: list[str]) -> None:
    """Import the third-party modules the selection needs, never causeflow (see _LIST_IMPORTS)."""
    found = subprocess.run(
        [sys.executable, "-c", _LIST_IMPORTS, *selection],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    for name in found.stdout.split():
        if name.isidentifier() or all(p.isidentifier() for p in name.split(".")):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 - a module that will not load alone is only slower
                continue


def check_config(listed: list[str], selection: list[str]) -> int:
    """Every listed module and selected test file exists, and each module has a test file."""
    problems = [
        f"{path} does not exist" for path in listed + selection if not (ROOT / path).is_file()
    ]
    if not problems:
        problems = [
            f"no test of the selection imports {m}" for m in listed if not tests_of(m, selection)
        ]
    for problem in problems:
        print(f"[tool.mutmut] in pyproject.toml: {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="only these (paths as in only_mutate)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=int, default=120, help="seconds per mutant")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--work", help="directory for the copies and logs (emptied first)")
    parser.add_argument("--check", action="store_true", help="check [tool.mutmut] and stop")
    args = parser.parse_args(argv)
    listed, selection = config()
    if args.check:
        return check_config(listed, selection)
    modules = {m: tests_of(m, selection) for m in (args.modules or listed)}
    jobs = [(mutant, modules[m]) for m in modules for mutant in mutants_of(m)]
    if args.list:
        for mutant, tests in jobs:
            print(f"{mutant.module}:{mutant.line} {mutant.table}: {mutant.what}  <- {tests}")
        return 0
    untested = [m for m, tests in modules.items() if not tests and mutants_of(m)]
    if untested:
        print(f"no test of the selection imports: {', '.join(untested)}")
        return 1
    os.chdir(ROOT)
    warm_up(sorted({t for tests in modules.values() for t in tests}))
    started = time.monotonic()
    root = Path(args.work or tempfile.mkdtemp(prefix="causeflow-tables-")).resolve()
    shutil.rmtree(root, ignore_errors=True)
    if not baseline_ok(modules, root, args.timeout):
        return 2
    verdicts = run_all(jobs, root, max(1, args.jobs), args.timeout)
    ok = report(verdicts, list(modules), root)
    print(f"{len(verdicts)} table mutants in {time.monotonic() - started:.0f} s")
    if ok:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
