"""The README's five-minute walkthrough, run as a newcomer would paste it: the commands are
taken from the README itself (only the ports and the data directory are moved aside)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_commands() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Five-minute walkthrough", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 4, "the walkthrough lost its code blocks"
    return "\n".join(blocks)


@pytest.mark.slow
def test_readme_walkthrough_runs(tmp_path: Path):
    if not (ROOT / ".venv" / "bin" / "causeflow").exists():
        pytest.skip("the walkthrough runs in the repository's .venv (make test creates it)")
    api_port, hook_port = free_port(), free_port()
    script = walkthrough_commands()
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}")
    script = script.replace(":3000", f":{hook_port}").replace(" 3000 ", f" {hook_port} ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAUSEFLOW_")}
    env.update(
        {
            "CAUSEFLOW_DATA_DIR": str(tmp_path / "data"),
            "CAUSEFLOW_PORT": str(api_port),
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
            "CAUSEFLOW_API_URL": f"http://127.0.0.1:{api_port}",
        }
    )
    out_path = tmp_path / "out.txt"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", "set -e\n" + script + "\nwait"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = out_path.read_text()
            if text.count("verified incident.created") >= 3:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        text = out_path.read_text()
        assert text.count("verified incident.created") >= 3, text[-4000:]
        assert "rejected" not in text
        assert "event: incident.created" in text  # the curl stream showed the log
        assert re.search(r"incident\.created.*\[204\]", text), text[-4000:]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
