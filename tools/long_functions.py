"""List the longest and deepest functions of the source, and check them against limits.

A function's length is its line count from `def` to its last line (decorators left out); its
nesting is the deepest chain of compound statements (`if`, `for`, `while`, `with`, `try`,
`match`, and their `async` forms) inside its body. An `elif` is not a level of its own, and a
function defined inside another is measured on its own. Functions are reported longest first:

    python tools/long_functions.py                      # the 20 longest under src/
    python tools/long_functions.py --top 0 src/causeflow/webhook
    python tools/long_functions.py --max 60 --max-nesting 4 src/causeflow   # a check: exit 1

With `--max` (or `--max-nesting`) only the functions over a limit are printed, and the exit
status is 1 if there is any. `tests/system/test_function_size.py` runs the same check over the
service's hot paths.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOUND = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Function:
    path: Path
    line: int
    name: str  # qualified within its module: Class.method, outer.inner
    length: int
    nesting: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name} {self.length} lines, nesting {self.nesting}"


def _is_elif(node: ast.stmt, parent: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(parent, ast.If)
        and parent.orelse == [node]
        and node.col_offset == parent.col_offset
    )


def _blocks(node: ast.stmt) -> Iterator[list[ast.stmt]]:
    """The statement lists directly inside a compound statement."""
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if block:
            yield block
    for handler in getattr(node, "handlers", ()):
        yield handler.body
    for case in getattr(node, "cases", ()):
        yield case.body


def nesting(body: Iterable[ast.stmt]) -> int:
    """The deepest chain of compound statements in `body` (nested functions not included)."""
    deepest = 0
    for node in body:
        if not isinstance(node, COMPOUND):
            continue
        inner = 0
        for block in _blocks(node):
            if len(block) == 1 and _is_elif(block[0], node):
                inner = max(inner, nesting(block) - 1)
            else:
                inner = max(inner, nesting(block))
        deepest = max(deepest, 1 + inner)
    return deepest


def functions(path: Path, display: Path | None = None) -> Iterator[Function]:
    """Every function and method defined in the module at `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    shown = display or path

    def walk(node: ast.AST, prefix: str) -> Iterator[Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, FUNCTIONS):
                name = f"{prefix}{child.name}"
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                yield Function(shown, child.lineno, name, length, nesting(child.body))
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def scan(paths: Iterable[Path]) -> list[Function]:
    """Every function under `paths` (files or directories), longest first."""
    found: list[Function] = []
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            try:
                display = path.resolve().relative_to(ROOT)
            except ValueError:
                display = path
            found.extend(functions(path, display))
    return sorted(found, key=lambda f: (-f.length, -f.nesting, str(f.path), f.line))


def over(
    found: Iterable[Function], max_lines: int | None, max_nesting: int | None
) -> list[Function]:
    """The functions longer than `max_lines` or nested deeper than `max_nesting`."""
    return [
        f
        for f in found
        if (max_lines is not None and f.length > max_lines)
        or (max_nesting is not None and f.nesting > max_nesting)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files or directories (src/)")
    parser.add_argument("--max", type=int, help="longest allowed, in lines: a check")
    parser.add_argument("--max-nesting", type=int, help="deepest allowed nesting: a check")
    parser.add_argument("--top", type=int, default=20, help="how many to list (0: all)")
    args = parser.parse_args(argv)
    found = scan(args.paths or [ROOT / "src"])
    if args.max is None and args.max_nesting is None:
        for function in found[: args.top or None]:
            print(function)
        return 0
    bad = over(found, args.max, args.max_nesting)
    for function in bad:
        print(function)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
