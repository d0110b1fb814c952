"""No import cycle between the modules of the service, nor between those of its client library.

The module graph is read from the source with `ast`: every `import` and `from … import`
anywhere in a module (functions and methods included, since a deferred import still runs),
except those under `if TYPE_CHECKING:`, which never run; `lint-imports` counts those too when
it checks the layers. Implicit imports of parent packages are left out: a package's
`__init__` importing its own modules is not a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

import pytest

import causeflow
import causeflow_sdk

pytestmark = pytest.mark.unit

# The server and its client library (a distribution of its own, with the event models).
SDK_MODULES = ["causeflow_sdk.sync", "causeflow_sdk.models.catalog"]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module under `root` (the package's directory) by dotted name."""
    found: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under `node`, skipping `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _imports(child)


def _owner(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module that `name` (a module, or a name inside one) belongs to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of the package it imports."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        base = module if is_package else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                source = node.module or ""
                if node.level:
                    anchor = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                    source = ".".join([*anchor, *([source] if source else [])])
                # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod.
                names = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                ]
            for name in names:
                owner = _owner(name, modules)
                if owner is not None and owner != module:
                    targets.add(owner)
        graph[module] = targets
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:
        # Tarjan's algorithm, iteratively (no recursion limit on long chains).
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph.get(node, ()):
                    groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, set()) & group):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a group always has one


@pytest.mark.parametrize(
    ("package", "known"),
    [(causeflow, ["causeflow.app", "causeflow.db.engine"]), (causeflow_sdk, SDK_MODULES)],
    ids=["causeflow", "causeflow_sdk"],
)
def test_no_module_imports_itself_back(package: ModuleType, known: list[str]) -> None:
    modules = module_files(Path(package.__file__ or "").parent, package.__name__)
    assert set(known) <= set(modules)
    cycles = find_cycles(import_graph(modules))
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_the_graph_sees_deferred_imports_and_skips_type_only_ones(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import low\n")
    (pkg / "sub" / "low.py").write_text("def f():\n    from ..high import g\n")
    (pkg / "high.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import typed\n"
        "else:\n    import json\nfrom pkg.sub import low as _low\nfrom pkg.sub.low import f\n"
    )
    (pkg / "typed.py").write_text("import pkg.high\n")
    modules = module_files(pkg, "pkg")
    graph = import_graph(modules)
    assert graph["pkg.sub.low"] == {"pkg.high"}
    assert graph["pkg.high"] == {"pkg.sub.low"}
    assert graph["pkg.typed"] == {"pkg.high"}
    assert graph["pkg.sub"] == {"pkg.sub.low"}
    assert find_cycles(graph) == [["pkg.high", "pkg.sub.low", "pkg.high"]]


def test_each_feature_alone_touches_its_tables() -> None:
    """A package's `tables.py` is imported only inside that package (its repository holds the
    SQL) and by schema.py, which gathers every table for the migrations. lint-imports pins the
    incident and event-log tables to their one repository module each."""
    root = Path(causeflow.__file__).parent
    modules = module_files(root, "causeflow")
    tables = {name for name in modules if name.endswith(".tables")}
    assert "causeflow.incident.tables" in tables and "causeflow.event.tables" in tables
    outside = sorted(
        f"{importer} -> {table}"
        for importer, targets in import_graph(modules).items()
        for table in targets & tables
        if importer != "causeflow.schema"
        and not importer.startswith(table.rpartition(".")[0] + ".")
    )
    assert not outside, "tables used outside their package:\n" + "\n".join(outside)
