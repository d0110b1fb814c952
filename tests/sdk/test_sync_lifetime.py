"""A blocking `Client` that is never closed still releases its session, loop and thread.

Dropping the last reference (or exiting the interpreter) must not leave an aiohttp session
for its destructor to report ("Unclosed client session", a ResourceWarning) nor a thread
running an event loop forever.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
import warnings

import pytest

from causeflow_sdk import Client
from tests.support.processes import service_env
from tests.support.serve import Live

pytestmark = pytest.mark.process

UNCLOSED = ("Unclosed", "unclosed")


def _client_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "causeflow-client"}


def _wait_gone(threads: set[threading.Thread], seconds: float = 5.0) -> set[threading.Thread]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.02)
    return {t for t in threads if t.is_alive()}


def _use_and_drop(live: Live) -> None:
    cf = Client(live.url, api_key=live.api_key)
    assert cf.incidents.list(limit=1).items is not None  # opens the session and a connection
    del cf


def test_a_dropped_client_closes_its_session_and_stops_its_thread(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    before = _client_threads()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _use_and_drop(live)
        # A group or a temporary keeps the client alive exactly as long as it is used.
        assert Client(live.url, api_key=live.api_key).incidents.list(limit=1).items is not None
        gc.collect()
        leaked = _wait_gone(_client_threads() - before)
        gc.collect()
    resource = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert resource == []
    assert not [r for r in caplog.records if any(u in r.getMessage() for u in UNCLOSED)]
    assert leaked == set(), "the client's event-loop thread still runs"


PROBE = """
import sys
from causeflow_sdk import Client
cf = Client(sys.argv[1], api_key=sys.argv[2])
cf.incidents.list(limit=1)
print("listed", flush=True)
"""


def test_a_client_left_open_at_exit_closes_quietly(live: Live) -> None:
    argv = [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", PROBE]
    done = subprocess.run(
        [*argv, live.url, live.api_key],
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "listed", done.stderr
    assert not any(u in done.stderr for u in UNCLOSED), done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr
