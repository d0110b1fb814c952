"""The example receivers of examples/receivers/ (Python, Node.js, Go) against the test vectors
and as real HTTP receivers.

Each example's `--selftest` must agree with every vector and check of vectors.json (and fail on
a copy with one wrong expectation). Each then runs as a real process on loopback: it verifies
signed deliveries from a running service (a real event, a retry of it with the same
`webhook-id`, a test delivery after a secret rotation it has not followed), and refuses requests
signed by the service's signing module with a wrong secret, too long ago, or over another body.
Node.js and Go tests skip without `node` / `go`, or fail under CAUSEFLOW_REQUIRE_NODE=1 /
CAUSEFLOW_REQUIRE_GO=1 (CI).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from causeflow.ids import new_id
from causeflow.webhook.signing import delivery_headers, generate_secret
from causeflow_sdk.models import Envelope
from tests.support.inproc import Service
from tests.support.ports import free_port
from tests.support.processes import SRC_DIR, ServiceProcess, service_env
from tests.support.toolchains import go_env, require_tool

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "receivers"
VECTORS = EXAMPLES / "vectors.json"
SUBS = "/v1/webhook-subscriptions"


@dataclass
class Example:
    name: str
    command: list[str]
    vectors_flag: list[str] = field(default_factory=list)  # what precedes the vectors' path
    env: dict[str, str] = field(default_factory=dict)

    def selftest(self, path: Path) -> subprocess.CompletedProcess[str]:
        argv = [*self.command, "--selftest", *self.vectors_flag, str(path)]
        return subprocess.run(
            argv, env=service_env(self.env), capture_output=True, text=True, timeout=60
        )


def python_example(_tmp: Path) -> Example:
    script = EXAMPLES / "python" / "receiver.py"
    return Example("python", [sys.executable, str(script)], env={"PYTHONPATH": str(SRC_DIR)})


def node_example(_tmp: Path) -> Example:
    node = require_tool("node", "CAUSEFLOW_REQUIRE_NODE")
    return Example("node", [node, str(EXAMPLES / "node" / "receiver.mjs")])


def go_example(tmp: Path) -> Example:
    go = require_tool("go", "CAUSEFLOW_REQUIRE_GO")
    binary = tmp / "receiver"
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=EXAMPLES / "go",
        env=go_env(tmp),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return Example("go", [str(binary)], vectors_flag=["--vectors"])


BUILDERS = {"python": python_example, "node": node_example, "go": go_example}


@pytest.fixture(scope="module", params=list(BUILDERS))
def example(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Example:
    return BUILDERS[request.param](tmp_path_factory.mktemp(request.param))


# --- the vectors --------------------------------------------------------------------------


@pytest.mark.process
def test_selftest_agrees_with_every_vector(example: Example) -> None:
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    total = len(doc["vectors"]) + len(doc["checks"])
    done = example.selftest(VECTORS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"selftest: {total} of {total} vectors and checks agree" in done.stdout


@pytest.mark.process
def test_selftest_fails_on_a_wrong_expectation(example: Example, tmp_path: Path) -> None:
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    doc["checks"][0]["valid"] = not doc["checks"][0]["valid"]
    doc["vectors"][1]["headers"]["webhook-signature"] = "v1," + "A" * 43 + "="
    wrong = tmp_path / "vectors.json"
    wrong.write_text(json.dumps(doc), encoding="utf-8")
    done = example.selftest(wrong)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAILED check: {doc['checks'][0]['name']}" in done.stdout
    assert f"FAILED signing: {doc['vectors'][1]['name']}" in done.stdout


# --- as a receiver ------------------------------------------------------------------------


@contextmanager
def running(example: Example, tmp: Path, secrets: list[str]) -> Iterator[ServiceProcess]:
    env = service_env({**example.env, "CAUSEFLOW_WEBHOOK_SECRET": ",".join(secrets)})
    proc = ServiceProcess(
        role=f"{example.name}-receiver",
        env=env,
        port=free_port(),
        log_path=tmp / f"{example.name}-receiver.log",
        argv=[*example.command, "{port}"],
        health_path=None,
        ready_log="listening on",
    )
    proc.start(timeout=30)
    try:
        yield proc
    finally:
        proc.terminate()


async def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def delivered(service: Service, headers: dict[str, str], delivery_id: str) -> dict[str, Any]:
    async def succeeded() -> dict[str, Any] | None:
        resp = await service.client.get(f"/v1/deliveries/{delivery_id}", headers=headers)
        body: dict[str, Any] = resp.json()
        assert body.get("status") in ("pending", "succeeded"), body
        return body if body["status"] == "succeeded" else None

    return await wait_for(f"delivery {delivery_id} to succeed", succeeded)  # type: ignore[no-any-return]


async def logged(proc: ServiceProcess, line: str) -> None:
    async def seen() -> bool:
        return line in proc.log_text()

    await wait_for(f"{line!r} in the receiver's output\n{proc.log_tail()}", seen)


@pytest.mark.process
async def test_receives_real_signed_deliveries(
    example: Example, sqlite_service: Service, tmp_path: Path
) -> None:
    client = sqlite_service.client
    admin = (await sqlite_service.tenant("acme")).admin_headers
    secret = generate_secret()
    with running(example, tmp_path, [secret]) as proc:
        url = f"{proc.base_url}/hooks"
        body = {"url": url, "events": ["incident.created"], "secret": secret}
        sub = (await client.post(SUBS, headers=admin, json=body)).json()
        incident = {"title": "Checkout is slow — p99 at 2.4 s", "severity": "high"}
        assert (await client.post("/v1/incidents", headers=admin, json=incident)).status_code == 201

        page = await wait_for(
            "the incident's delivery",
            lambda: _first_delivery(sqlite_service, admin, sub["id"]),
        )
        first = await delivered(sqlite_service, admin, page["id"])
        await logged(proc, f"verified incident.created {first['eventId']} {first['id']}")

        # The same delivery again (same webhook-id): answered 2xx, not processed twice.
        retry = await client.post(f"/v1/deliveries/{first['id']}/retry", headers=admin)
        assert retry.status_code == 202, retry.text
        await logged(proc, f"duplicate {first['id']}")
        assert (await delivered(sqlite_service, admin, first["id"]))["attempts"] == 2

        # A rotation the receiver has not followed: the old secret still signs for a while.
        rotated = await client.post(f"{SUBS}/{sub['id']}/rotate-secret", headers=admin, json={})
        assert rotated.json()["secret"] != secret
        test = (await client.post(f"{SUBS}/{sub['id']}/test", headers=admin, json={})).json()
        await delivered(sqlite_service, admin, test["id"])
        await logged(proc, f"verified incident.created {test['eventId']} {test['id']}")
        assert "rejected" not in proc.log_text()


async def _first_delivery(
    service: Service, headers: dict[str, str], sub_id: str
) -> dict[str, Any] | None:
    resp = await service.client.get(f"{SUBS}/{sub_id}/deliveries", headers=headers)
    items: list[dict[str, Any]] = resp.json()["items"]
    return items[0] if items else None


def envelope() -> bytes:
    return Envelope(
        id=new_id("evt"),
        event="incident.created",
        timestamp="2026-11-27T08:42:53.123Z",
        tenantId=new_id("ten"),
        data={"incidentId": new_id("inc"), "title": "disk full", "severity": "low"},
    ).to_json()


def signed(body: bytes, secrets: list[str], at: float | None = None) -> dict[str, str]:
    return delivery_headers(
        event_type="incident.created",
        msg_id=new_id("msg"),
        timestamp=int(time.time() if at is None else at),
        body=body,
        secrets=secrets,
        version="test",
    )


@pytest.mark.process
def test_refuses_what_the_service_did_not_sign(example: Example, tmp_path: Path) -> None:
    secret, other = generate_secret(), "a-plain-secret-of-the-receiver"
    body = envelope()
    with running(example, tmp_path, [secret, other]) as proc:
        url = f"{proc.base_url}/hooks"

        def post(headers: dict[str, str], content: bytes = body) -> int:
            return httpx.post(url, content=content, headers=headers, timeout=10).status_code

        assert post(signed(body, [secret])) == 204
        assert post(signed(body, [other])) == 204  # any secret the receiver holds
        hex_only = {k: v for k, v in signed(body, [other]).items() if not k.startswith("webhook-")}
        assert post(hex_only) == 204
        assert post(signed(body, [generate_secret()])) == 400
        assert post(signed(body, [secret], at=time.time() - 400)) == 400
        assert post(signed(body, [secret]), content=body.replace(b"low", b"high")) == 400
        assert post({"Content-Type": "application/json"}) == 400
        log = proc.log_text()
    assert log.count("rejected") == 4, log
    assert log.count("verified incident.created") == 3, log


@pytest.mark.unit
def test_a_missing_toolchain_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CAUSEFLOW_REQUIRE_GO", raising=False)
    with pytest.raises(pytest.skip.Exception, match="CAUSEFLOW_REQUIRE_GO=1"):
        require_tool("go", "CAUSEFLOW_REQUIRE_GO")
    monkeypatch.setenv("CAUSEFLOW_REQUIRE_GO", "1")
    with pytest.raises(pytest.fail.Exception, match="golang-go"):
        require_tool("go", "CAUSEFLOW_REQUIRE_GO")
