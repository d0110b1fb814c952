"""`causeflow listen` and `causeflow trigger` as a developer runs them, against a real server.

`listen` runs as its own process and forwards to a loopback receiver, which checks every
request with the `standardwebhooks` library and the secret `listen` printed.
"""

from __future__ import annotations

import asyncio
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from causeflow.devtools.secret import load_or_create_secret
from causeflow_sdk import AsyncClient
from causeflow_sdk.models import sample_data
from tests.devtools.test_trigger import run_cli
from tests.support.processes import service_env
from tests.support.receiver import Receiver
from tests.support.serve import Live, live_service

pytestmark = pytest.mark.process

INCIDENT = "inc_01M8E9Y4JZD9C5KVS531FKX582"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_service(tmp_path_factory.mktemp("listen-live")) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rec:
        yield rec


class Command:
    """A `python -m causeflow …` process whose output is read line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            asyncio.create_task(self._read(proc.stdout, self.out)),
            asyncio.create_task(self._read(proc.stderr, self.err)),
        ]

    @classmethod
    async def start(cls, config_home: Path, *args: str) -> Command:
        env = service_env({"XDG_CONFIG_HOME": str(config_home)})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "causeflow",
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    @staticmethod
    async def _read(pipe: asyncio.StreamReader | None, into: list[str]) -> None:
        assert pipe is not None
        async for line in pipe:
            into.append(line.decode().rstrip("\n"))

    async def line_matching(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.out:
                    if (found := re.search(pattern, line)) is not None:
                        return found
                if self.proc.returncode is not None:
                    raise AssertionError(f"exited {self.proc.returncode}: {self.out} {self.err}")
                await asyncio.sleep(0.02)

    async def wait(self, timeout: float = 20) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._readers)
        return code

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def test_listen_forwards_signed_events_across_a_restart_and_stops_on_sigint(
    live: Live, receiver: Receiver, tmp_path: Path
) -> None:
    creds = ["--api-url", live.url, "--api-key", live.api_key]
    listen = await Command.start(
        tmp_path, "listen", "--forward-to", receiver.url_for("/hooks"), *creds
    )
    try:
        secret = (await listen.line_matching(r"signing secret is (whsec_\S+)")).group(1)
        await listen.line_matching(r"^Ready! Forwarding all events")

        # `trigger` publishes a test event; `listen` forwards it as a signed delivery.
        trigger = await Command.start(
            tmp_path, "trigger", "incident.created", "--incident", INCIDENT, *creds
        )
        assert await trigger.wait() == 0, trigger.err
        envelope = orjson.loads("\n".join(trigger.out))
        assert envelope["test"] is True and envelope["data"]["incidentId"] == INCIDENT
        [request] = await receiver.wait_for(1, path="/hooks")
        assert orjson.loads(request.body) == envelope
        assert Webhook(secret).verify(request.body, dict(request.headers)) == envelope
        assert request.headers["webhook-id"] == "msg_" + envelope["id"].removeprefix("evt_")
        assert request.headers["X-CauseFlow-Delivery"] == request.headers["webhook-id"]
        assert request.headers["X-CauseFlow-Event"] == "incident.created"
        line = await listen.line_matching(re.escape(envelope["id"]) + r".*\[200\] \d+ ms")
        assert "incident.created (test)" in line.string

        # A restart in the middle: events committed while `listen` is away arrive too.
        async with AsyncClient(live.url, api_key=live.api_key) as client:
            data = sample_data("investigation.progress")
            before = [
                (await client.events.publish("investigation.progress", data)).id for _ in range(2)
            ]
            await receiver.wait_for(3, path="/hooks")
            await asyncio.to_thread(live.server.restart)
            after = [
                (await client.events.publish("investigation.progress", data)).id for _ in range(2)
            ]
        requests = await receiver.wait_for(5, path="/hooks", timeout=20)
        ids = [orjson.loads(r.body)["id"] for r in requests]
        assert ids == [envelope["id"], *before, *after]
        for forwarded in requests:
            Webhook(secret).verify(forwarded.body, dict(forwarded.headers))
        for event_id in after:
            await listen.line_matching(re.escape(event_id) + r".*\[200\]")
        assert any(line.startswith("Reconnected; resuming after") for line in listen.err)

        listen.proc.send_signal(signal.SIGINT)
        assert await listen.wait() == 0
        assert "Traceback" not in "\n".join(listen.out + listen.err)
        assert listen.err[-1] == "Stopped."
    finally:
        listen.kill()

    # The secret is kept (0600) for the next run, which prints and uses the same one.
    stored = tmp_path / "causeflow" / "listen-secret"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert load_or_create_secret(stored) == secret


def test_a_refused_key_is_one_line(
    live: Live, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("CAUSEFLOW_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    wrong = ["--api-url", live.url, "--api-key", "cflo_" + "0" * 64]
    code, _, err = run_cli(
        monkeypatch, capsys, "listen", "--forward-to", "http://127.0.0.1:9/", *wrong
    )
    assert code != 0 and err.startswith("error: ") and "refused the stream: 401" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "trigger", "incident.created", *wrong)
    assert code != 0 and "POST /v1/events: 401" in err
    assert len(err.strip().splitlines()) == 1
