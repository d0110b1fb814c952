"""The directory `make mutation` runs mutmut in: every source root of the mutation set under one
`src/`.

The modules to mutate live in two distributions, the server (`src/`) and the Python SDK
(`sdk/python/src/`). mutmut names a mutant after its file's path with only a leading `src/`
stripped, and puts only `mutants/src` (not `mutants/sdk/python/src`) on the import path, so
a module outside `src/` would get a name no test run ever records and would be imported
unmutated. This tool copies each root of [tool.mutmut] `source_paths` into one `src/` of a
stage directory (`.mutation/`), with `tests/`, the `also_copy` paths and a pyproject.toml whose
[tool.mutmut] names the staged paths; mutmut runs there and leaves its results in
`.mutation/mutants/`. `staged()` maps a module path of pyproject.toml to its staged path.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".mutation"


def mutmut_config(root: Path = ROOT) -> dict[str, Any]:
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(data["tool"]["mutmut"])


def source_roots(root: Path = ROOT) -> list[str]:
    """The source roots, longest first (so `sdk/python/src` is tried before `src`)."""
    roots = [p.rstrip("/") for p in mutmut_config(root).get("source_paths", ["src"])]
    return sorted(roots, key=len, reverse=True)


def split(module: str, roots: list[str]) -> tuple[str, str]:
    """A module path as (its source root, its path inside the root)."""
    for source in roots:
        if module.startswith(source + "/"):
            return source, module.removeprefix(source + "/")
    raise ValueError(f"{module} is under none of the source paths {roots}")


def staged(module: str, roots: list[str] | None = None) -> str:
    """The module's path in the stage, e.g. src/causeflow_sdk/signatures.py."""
    return "src/" + split(module, roots or source_roots())[1]


def _staged_pyproject(text: str, roots: list[str]) -> str:
    """pyproject.toml with [tool.mutmut] naming one `src` root and the staged module paths."""
    text = re.sub(r"(?m)^source_paths\s*=.*$", 'source_paths = ["src"]', text, count=1)
    for source in roots:
        if source != "src":
            text = text.replace(f'"{source}/', '"src/')
    return text


def build(stage: Path = STAGE, root: Path = ROOT) -> Path:
    """A fresh stage: the source roots merged under src/, tests, also_copy, pyproject.toml."""
    config = mutmut_config(root)
    roots = source_roots(root)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for source in roots:
        shutil.copytree(root / source, stage / "src", ignore=ignore, dirs_exist_ok=True)
    for extra in ["tests", *config.get("also_copy", [])]:
        shutil.copytree(root / extra, stage / extra, ignore=ignore, dirs_exist_ok=True)
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    (stage / "pyproject.toml").write_text(_staged_pyproject(pyproject, roots), encoding="utf-8")
    listed = mutmut_config(stage)["only_mutate"]
    missing = [m for m in listed if not (stage / m).is_file()]
    if missing:
        raise SystemExit(f"staged [tool.mutmut] names missing files: {missing}")
    return stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default=str(STAGE), help="directory to (re)build")
    args = parser.parse_args(argv)
    print(build(Path(args.stage)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
