"""The README's five-minute walkthrough, run as a newcomer would paste it: the commands are
taken from the README itself (only the ports and the data directory are moved aside)."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Five-minute walkthrough", 1)[1].split("\n## ", 1)[0]


def walkthrough_commands() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", walkthrough_section(), flags=re.S)
    assert len(blocks) >= 4, "the walkthrough lost its code blocks"
    return "\n".join(blocks)


def test_walkthrough_says_to_stop_a_running_make_serve_first():
    prose = " ".join(walkthrough_section().split("```sh", 1)[0].split())
    assert "if a `make serve` from above is still running, stop it first" in prose
    first_block = walkthrough_commands().splitlines()
    # before the service starts, a taken port 8000 is reported (and nothing else happens)
    guard = next(i for i, line in enumerate(first_block) if "127.0.0.1:8000/healthz" in line)
    start = next(i for i, line in enumerate(first_block) if "make serve &" in line)
    assert guard < start and "stop the running make serve" in first_block[guard]
    assert first_block[guard].startswith("curl -sf") and " && echo " in first_block[guard]


def check_key(port: int, key: str) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events?limit=1", headers={"X-API-Key": key}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback)
        return int(resp.status)


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
        assert "Port 8000 is taken" not in text  # the guard stayed quiet on a free port
        # the dev tenant's key for the dashboard, as printed, is the one the steps used
        sign_in = re.search(
            rf"Dashboard sign-in: open http://127\.0\.0\.1:{api_port}/ui and paste the dev "
            r"tenant's API key (cflo_\S+)",
            text,
        )
        assert sign_in, text[-4000:]
        dev_key = sign_in.group(1)
        # the first start's credentials went to a private file, not into the output
        first_run = tmp_path / "data" / "first-run-credentials.txt"
        assert f"are in {first_run}" in text and stat.S_IMODE(first_run.stat().st_mode) == 0o600
        default_key = re.search(r"^  API key\s+(\S+)$", first_run.read_text(), re.M)
        assert default_key and default_key.group(1) not in text and dev_key != default_key.group(1)
        status = check_key(api_port, dev_key)
        assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
