"""The container image, built from this tree's Containerfile on a Debian base made here and run
with podman: on the machine's PostgreSQL (`migrate`, a tenant from the CLI inside the image,
`serve` and a `worker` container, a signed delivery to a loopback receiver, the health check,
a restart that finds the data), and on SQLite in its `/data` volume (an online backup from a
second container, a restart that keeps the store)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from causeflow_sdk.models import sample_data
from causeflow_sdk.webhooks import verify
from tests.support.container import (
    IMAGE,
    Container,
    build_image,
    ensure_base_image,
    podman,
    require_container_tools,
    run_once,
    wheelhouse,
)
from tests.support.keys import pg_key_env
from tests.support.pg import fresh_database, require_pg
from tests.support.ports import free_port
from tests.support.processes import parse_json_output
from tests.support.receiver import ThreadedReceiver

pytestmark = [pytest.mark.process, pytest.mark.slow, pytest.mark.timeout(3600)]

EVENT = "incident.created"
ENV = {
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_WEBHOOK_POLL_SECONDS": "0.5",
    "CAUSEFLOW_LOG_LEVEL": "warning",
}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image, built once for the module; the phases' times are printed (`-s` shows them)."""
    require_container_tools()
    started = time.monotonic()
    made = ensure_base_image(tmp_path_factory.mktemp("base"))
    base_done = time.monotonic()
    wheels = wheelhouse()
    wheels_done = time.monotonic()
    build_image(wheels)
    done = time.monotonic()
    print(
        f"\nimage: base {'made' if made else 'cached'} in {base_done - started:.1f} s, "
        f"wheelhouse {wheels_done - base_done:.1f} s, build {done - wheels_done:.1f} s"
    )
    return IMAGE


def http(method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (loopback)
        assert resp.status in (200, 201), resp.status
        return json.loads(resp.read())


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    try:
        yield started
    finally:
        for container in started:
            container.remove()


def test_image_on_postgresql(image: str, containers: list[Container]) -> None:
    require_pg()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with fresh_database("cf_image") as url, ThreadedReceiver() as receiver:
        env = {**ENV, "CAUSEFLOW_DATABASE_URL": url, "CAUSEFLOW_PORT": str(port)}
        env |= pg_key_env(url)
        assert "schema is up to date" in run_once(env, "migrate").stderr
        tenant = parse_json_output(
            run_once(env, "tenant", "create", "--name", "acme", "--json").stdout
        )
        api = Container(env)
        containers.append(api.start())
        worker = Container({**env, "CAUSEFLOW_WORKER_METRICS_PORT": str(free_port())}, ("worker",))
        containers.append(worker.start())
        api.wait_http(base + "/healthz")
        worker.wait_log(" running")
        assert api.healthcheck().returncode == 0
        assert worker.healthcheck().returncode == 0

        key = {"X-API-Key": tenant["apiKey"]}
        sub = http(
            "POST",
            base + "/v1/webhook-subscriptions",
            key,
            {"url": receiver.url_for("/hook"), "events": [EVENT]},
        )
        event = http("POST", base + "/v1/events", key, {"event": EVENT, "data": sample_data(EVENT)})
        (delivery,) = receiver.wait_for_sync(1, timeout=30)
        envelope = verify(delivery.body, delivery.headers, sub["secret"])
        assert envelope.id == event["id"] and envelope.event == EVENT

        api.restart()
        api.wait_http(base + "/healthz")
        listed = http("GET", base + f"/v1/events?event={EVENT}", key)
        assert [e["id"] for e in listed["items"]] == [event["id"]]


def test_image_keeps_its_sqlite_store_in_the_data_volume(
    image: str, containers: list[Container], tmp_path: Path
) -> None:
    volume = f"cf-test-{tmp_path.name[-20:].lower()}".replace("_", "-")
    podman("volume", "create", volume)
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # options alone are serve's (and the health check finds the port among them)
        api = Container(ENV, ("--port", str(port)), volume=volume)
        containers.append(api.start())
        api.wait_http(base + "/healthz")
        # no terminal: the first tenant's credentials are in a 0600 file in the volume, and
        # the log names only that file
        assert "cflo_" not in api.logs() and "first-run-credentials.txt" in api.logs()
        saved = run_once({}, "/data/first-run-credentials.txt", volume=volume, entrypoint="cat")
        found = re.search(r"API key\s+(cflo_\S+)", saved.stdout)
        assert found, saved.stdout + saved.stderr
        key = {"X-API-Key": found.group(1)}
        first = http("GET", base + "/v1/events", key)["items"]
        assert [e["event"] for e in first] == ["tenant.created"]

        # an online backup from a second container sharing the volume
        out = run_once({}, "backup", "/data/backup.db", volume=volume)
        assert "backed up /data/causeflow.db" in out.stderr
        listing = run_once({}, "-ln", "/data", volume=volume, entrypoint="ls")
        assert "keys.json" in listing.stdout and " 10001 " in listing.stdout

        assert api.healthcheck().returncode == 0
        api.restart()
        api.wait_http(base + "/healthz")
        assert http("GET", base + "/v1/events", key)["items"] == first
        assert api.logs().count("created tenant 'default'") == 1
    finally:
        for container in containers:
            container.remove()
        podman("volume", "rm", "--force", volume, check=False)


def test_image_carries_the_tracer_and_every_broker_client(image: str) -> None:
    """The default EXTRAS: traces can be switched on and every destination type delivers."""
    modules = "aio_pika, aiomqtt, nats, redis.asyncio, opentelemetry.sdk.trace"
    probe = run_once(
        {}, "-c", f"import {modules}; print('ok')", entrypoint="/opt/causeflow/bin/python"
    )
    assert probe.stdout.strip() == "ok", probe.stderr
