"""The service's hot paths stay readable: no function over 60 lines, no nesting deeper than 4.

The measure is `tools/long_functions.py` (length from `def` to the last line; nesting counts
`if`/`for`/`while`/`with`/`try`/`match` inside a body, an `elif` not being a level of its own).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools/long_functions.py"
PACKAGES = ("webhook", "ingest", "api", "stream", "publish", "event")
MAX_LINES = 60
MAX_NESTING = 4


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("long_functions", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("package", PACKAGES)
def test_functions_are_short_and_shallow(package: str) -> None:
    lf = tool()
    found = lf.scan([ROOT / "src/causeflow" / package])
    assert found, f"no functions found under {package}"
    bad = lf.over(found, MAX_LINES, MAX_NESTING)
    assert not bad, "over the limits:\n" + "\n".join(map(str, bad))


SAMPLE = """
def shallow(x):
    if x == 1:
        return 1
    elif x == 2:
        return 2
    elif x == 3:
        for i in range(3):
            with open("f") as f:
                try:
                    pass
                finally:
                    pass
    return 0


def deep(x):
    for a in x:
        while a:
            with a:
                try:
                    if a:
                        pass
                except ValueError:
                    pass


class Holder:
    def method(self):
        def inner():
            if True:
                pass
        return inner
"""


def test_the_measure(tmp_path: Path) -> None:
    lf = tool()
    source = tmp_path / "sample.py"
    source.write_text(SAMPLE + "\n\ndef long():\n" + "    x = 1\n" * 70)
    found = {f.name: f for f in lf.scan([source])}
    assert found["shallow"].nesting == 4  # elif/for/with/try: the elifs are one level
    assert found["deep"].nesting == 5
    assert found["Holder.method"].nesting == 0  # the inner function is measured on its own
    assert found["Holder.method.inner"].nesting == 1
    assert found["long"].length == 71
    assert {f.name for f in lf.over(found.values(), MAX_LINES, MAX_NESTING)} == {"deep", "long"}


def test_the_command_line_check_fails_on_a_long_function(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("def long():\n" + "    x = 1\n" * 70)
    command = [sys.executable, str(TOOL), "--max", "60", str(source)]
    failed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert "long 71 lines, nesting 0" in failed.stdout
    command[3] = "80"
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
