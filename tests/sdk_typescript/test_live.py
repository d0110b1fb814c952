"""The TypeScript SDK against a real `causeflow serve` process.

Each scenario is a compiled script of sdk/typescript/test/integration/ run with `node`, given
the server's URL and an admin API key. `webhooks` publishes with the client and verifies the
signed delivery in a node:http receiver with verifyWebhook. `stream` follows the stream while
this test stops the server and starts it again on the same data directory and port (the script
asks for it with an `ASK restart` line), and checks that every event arrives exactly once.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

import pytest

from tests.sdk_typescript import npm
from tests.support.serve import Live

pytestmark = pytest.mark.process

SCRIPTS = npm.PACKAGE / "build-test" / "test" / "integration"
TIMEOUT = 60.0


def _script(name: str, unit_run: subprocess.CompletedProcess[str]) -> Path:
    path = SCRIPTS / f"{name}.js"
    if not path.exists():
        pytest.fail(f"{path} was not compiled\n{npm.output(unit_run)}", pytrace=False)
    return path


def _answer(request: str, live: Live) -> str:
    if request == "restart":
        live.server.restart()
        return "restarted"
    raise AssertionError(f"unknown request from the script: {request!r}")


def run_scenario(name: str, live: Live, unit_run: subprocess.CompletedProcess[str]) -> str:
    """Run one script to its end, answering its requests; returns its output."""
    env = {**os.environ, "CAUSEFLOW_URL": live.url, "CAUSEFLOW_API_KEY": live.api_key}
    proc = subprocess.Popen(
        [npm.node(), str(_script(name, unit_run))],
        cwd=npm.PACKAGE,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                proc.kill()
                raise AssertionError(f"{name} timed out\n" + "".join(lines))
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("ASK "):
                proc.stdin.write(_answer(line[4:].strip(), live) + "\n")
                proc.stdin.flush()
    code = proc.wait(10)
    text = "".join(lines)
    assert code == 0 and text.rstrip().endswith("OK"), (
        f"{name} exited with {code}\n{text}\n--- server log ---\n{live.server.log_tail()}"
    )
    return text


def test_publish_and_verify_a_signed_webhook(
    live: Live, unit_run: subprocess.CompletedProcess[str]
) -> None:
    run_scenario("webhooks", live, unit_run)


def test_stream_resumes_across_a_server_restart(
    live: Live, unit_run: subprocess.CompletedProcess[str]
) -> None:
    starts = live.server.starts
    run_scenario("stream", live, unit_run)
    assert live.server.starts == starts + 1, "the server was restarted once"
