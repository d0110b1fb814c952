"""A real Prometheus Alertmanager notifies a real `causeflow serve` (SQLite).

Alerts are pushed into Alertmanager through its own API (`POST /api/v2/alerts`); Alertmanager
groups them and calls its `webhook_configs` receivers, exactly as in production:

- two alerts with different label sets, in one group, open two incidents (titles, severities,
  services and environments as docs/providers.md maps them; fingerprints are Alertmanager's);
- its repeat notifications of the same alerts attach to those incidents and open nothing new;
- one alert resolved (endsAt in the past) resolves its incident with `incident.status_changed`
  while the other stays open; the same alert firing again opens a new incident;
- a receiver with the key in `?apiKey=` works like one with a Bearer key;
- receivers holding a forged key and another tenant's key get 401 and store nothing.

Every step waits for the service's state with a deadline; nothing relies on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest

from tests.support.alertmanager import Alertmanager, now_utc, posted_alert, require_alertmanager
from tests.support.processes import Deployment, ServiceProcess

pytestmark = pytest.mark.process

T = TypeVar("T")

STEP_TIMEOUT = 20.0

# Short timings so a test sees several notification rounds in a few seconds. resolve_timeout
# (applied to pushed alerts without endsAt) outlives the test: only our pushes resolve alerts.
TIMINGS = {
    "group_wait": "200ms",
    "group_interval": "500ms",
    "repeat_interval": "1s",
}
RESOLVE_TIMEOUT = "2m"

CHECKOUT = {
    "labels": {
        "alertname": "CheckoutErrorRate",
        "severity": "critical",
        "service": "checkout",
        "environment": "production",
        "team": "payments",
        "via": "bearer",
    },
    "annotations": {
        "summary": "Checkout 5xx above 5 %",
        "description": "5xx ratio of checkout has been above 5 % for 5 minutes",
    },
}
DISK = {
    "labels": {
        "alertname": "DiskAlmostFull",
        "severity": "warning",
        "instance": "db-1:9100",
        "app": "postgres",
        "env": "staging",
        "team": "payments",
        "via": "bearer",
    },
    "annotations": {"summary": "Disk / on db-1 is 92 % full"},
}
QUEUE = {
    "labels": {"alertname": "QueueBacklog", "severity": "info", "team": "async", "via": "query"},
    "annotations": {"summary": "Queue backlog above 10k"},
}
CERT = {
    "labels": {
        "alertname": "CertificateExpiry",
        "severity": "high",
        "team": "edge",
        "via": "basic",
    },
    "annotations": {"summary": "TLS certificate expires in 7 days"},
}
FORGED = {
    "labels": {"alertname": "WrongKeyAlert", "severity": "critical", "via": "wrong-key"},
    "annotations": {"summary": "must never become an incident"},
}


def alertmanager_config(
    url: str, key: str, forged_key: str, other_tenant_key: str
) -> dict[str, Any]:
    """One route to the service (Bearer key), plus `?apiKey=` and two wrong-key receivers."""

    def receiver(
        name: str, target: str, bearer: str | None = None, password: str | None = None
    ) -> dict[str, Any]:
        webhook: dict[str, Any] = {"url": target, "send_resolved": True}
        if bearer is not None:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer}}
        if password is not None:
            auth = {"username": "alertmanager", "password": password}
            webhook["http_config"] = {"basic_auth": auth}
        return {"name": name, "webhook_configs": [webhook]}

    return {
        "global": {"resolve_timeout": RESOLVE_TIMEOUT},
        "route": {
            "receiver": "causeflow",
            "group_by": ["team", "via"],
            **TIMINGS,
            "routes": [
                {"matchers": ['via="query"'], "receiver": "causeflow-query"},
                {"matchers": ['via="basic"'], "receiver": "causeflow-basic"},
                {"matchers": ['via="wrong-key"'], "receiver": "forged-key", "continue": True},
                {"matchers": ['via="wrong-key"'], "receiver": "other-tenant-key"},
            ],
        },
        "receivers": [
            receiver("causeflow", url, bearer=key),
            receiver("causeflow-query", f"{url}?apiKey={key}"),
            receiver("causeflow-basic", url, password=key),
            receiver("forged-key", f"{url}?apiKey={forged_key}"),
            receiver("other-tenant-key", url, bearer=other_tenant_key),
        ],
    }


class Harness:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        server: ServiceProcess,
        am: Alertmanager,
        admin_token: str,
    ) -> None:
        self.http = http
        self.server = server
        self.am = am
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    async def get_json(self, url: str, headers: dict[str, str] | None = None) -> Any:
        async with self.http.get(url, headers=headers) as resp:
            text = await resp.text()
            assert resp.status == 200, f"GET {url}: {resp.status} {text}"
            return orjson.loads(text)

    async def push(self, *alerts: dict[str, Any]) -> None:
        async with self.http.post(self.am.base_url + "/api/v2/alerts", json=list(alerts)) as resp:
            assert resp.status == 200, f"Alertmanager refused the alerts: {await resp.text()}"

    async def incidents(self, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        page = await self.get_json(
            self.server.base_url + "/v1/incidents?limit=100", headers or self.admin
        )
        assert page["cursor"] is None
        return page["items"]  # type: ignore[no-any-return]

    async def incident(self, incident_id: str) -> dict[str, Any]:
        return await self.get_json(  # type: ignore[no-any-return]
            f"{self.server.base_url}/v1/incidents/{incident_id}", self.admin
        )

    async def am_fingerprints(self) -> dict[str, str]:
        """Alertmanager's own fingerprint of each alert it holds, by alertname."""
        alerts = await self.get_json(self.am.base_url + "/api/v2/alerts")
        return {a["labels"]["alertname"]: a["fingerprint"] for a in alerts}

    async def refused_count(self) -> float:
        async with self.http.get(self.server.base_url + "/metrics") as resp:
            text = await resp.text()
        total = 0.0
        for line in text.splitlines():
            if (
                line.startswith("causeflow_inbound_alerts_total{")
                and 'provider="alertmanager"' in line
                and 'outcome="invalid_api_key"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def until(
        self, what: str, fetch: Callable[[], Awaitable[T]], ok: Callable[[T], bool]
    ) -> T:
        """Poll `fetch` until `ok` holds, or fail after STEP_TIMEOUT with both processes' logs."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            value = await fetch()
            if ok(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{what}: not seen within {STEP_TIMEOUT} s; last value:\n{value!r}\n"
                    f"--- alertmanager log ---\n{self.am.process.log_tail(40)}\n"
                    f"--- service log ---\n{self.server.log_tail(40)}",
                    pytrace=False,
                )
            await asyncio.sleep(0.1)


def by_title(incidents: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
    return [i for i in incidents if i["title"] == title]


def fire(spec: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return posted_alert(spec["labels"], spec["annotations"], **kwargs)


@pytest.fixture
def deployment(tmp_path: Path):
    with Deployment(tmp_path, env={"CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0"}) as dep:
        yield dep


async def test_alertmanager_fires_repeats_resolves_and_refires(
    deployment: Deployment, tmp_path: Path
) -> None:
    binary = require_alertmanager()
    server = deployment.add_server()
    tenant = deployment.create_tenant("acme")
    other = deployment.create_tenant("globex")
    url = f"{server.base_url}/v1/webhooks/{tenant['tenantId']}/alertmanager"
    forged_key = "cflo_" + secrets.token_hex(32)
    config = alertmanager_config(url, tenant["ingestKey"], forged_key, other["ingestKey"])

    with Alertmanager(binary, tmp_path / "alertmanager", config) as am:
        async with aiohttp.ClientSession() as http:
            h = Harness(http, server, am, tenant["adminToken"])
            # Alertmanager cannot sign: a tenant that requires signatures still takes its
            # deliveries on the key alone (the requirement covers providers that can sign).
            async with http.patch(
                server.base_url + "/v1/tenant",
                headers=h.admin,
                json={"inbound": {"requireSignature": True}},
            ) as resp:
                assert resp.status == 200, await resp.text()
            started = now_utc(-60)

            # 1. Two alerts of one group (and one per other receiver) fire.
            await h.push(
                fire(CHECKOUT, starts_at=started),
                fire(DISK, starts_at=started),
                fire(QUEUE, starts_at=started),
                fire(CERT, starts_at=started),
                fire(FORGED, starts_at=started),
            )
            first = await h.until(
                "four incidents open",
                h.incidents,
                lambda items: len(items) == 4,
            )
            fingerprints = await h.am_fingerprints()
            [checkout] = by_title(first, "CheckoutErrorRate")
            [disk] = by_title(first, "DiskAlmostFull")
            [queue] = by_title(first, "QueueBacklog")
            [cert] = by_title(first, "CertificateExpiry")
            assert {i["status"] for i in first} == {"open"}
            assert {i["source"] for i in first} == {"alertmanager"}
            assert (
                checkout["severity"],
                checkout["service"],
                checkout["environment"],
                checkout["description"],
                checkout["fingerprint"],
            ) == (
                "critical",
                "checkout",
                "production",
                CHECKOUT["annotations"]["description"],
                fingerprints["CheckoutErrorRate"],
            )
            assert (
                disk["severity"],
                disk["service"],
                disk["environment"],
                disk["description"],
                disk["fingerprint"],
            ) == (
                "medium",
                "postgres",
                "staging",
                DISK["annotations"]["summary"],
                fingerprints["DiskAlmostFull"],
            )
            # The `?apiKey=` and Basic-auth receivers are accepted like the Bearer one.
            assert (queue["severity"], queue["fingerprint"]) == (
                "info",
                fingerprints["QueueBacklog"],
            )
            assert (cert["severity"], cert["fingerprint"]) == (
                "high",
                fingerprints["CertificateExpiry"],
            )

            # 2. The same alerts again: Alertmanager's repeats attach, nothing new opens.
            await h.push(fire(CHECKOUT), fire(DISK))
            repeated = await h.until(
                "repeat notifications attached to both incidents",
                h.incidents,
                lambda items: all(
                    i["alertCount"] >= 3 for i in items if i["id"] in (checkout["id"], disk["id"])
                ),
            )
            assert len(repeated) == 4
            assert {i["status"] for i in repeated} == {"open"}
            detail = await h.incident(checkout["id"])
            assert {a["status"] for a in detail["alerts"]} == {"firing"}
            assert {a["fingerprint"] for a in detail["alerts"]} == {checkout["fingerprint"]}
            assert detail["alerts"][-1]["labels"] == CHECKOUT["labels"]
            assert [e["event"] for e in detail["events"]] == ["incident.created"]

            # 3. CheckoutErrorRate resolves (endsAt in the past) while DiskAlmostFull, in the
            # same notification, keeps firing; QueueBacklog resolves alone (a group whose own
            # status is `resolved`).
            await h.push(
                fire(CHECKOUT, starts_at=started, ends_at=now_utc(-1)),
                fire(QUEUE, starts_at=started, ends_at=now_utc(-1)),
            )
            resolved = await h.until(
                "the checkout incident resolved",
                lambda: h.incident(checkout["id"]),
                lambda incident: incident["status"] == "resolved",
            )
            assert resolved["resolvedAt"] is not None
            assert resolved["alerts"][-1]["status"] == "resolved"
            moves = [
                (e["data"]["previousStatus"], e["data"]["newStatus"])
                for e in resolved["events"]
                if e["event"] == "incident.status_changed"
            ]
            assert moves == [("open", "resolved")]
            assert (await h.incident(disk["id"]))["status"] == "open"
            await h.until(
                "the queue incident resolved",
                lambda: h.incident(queue["id"]),
                lambda incident: incident["status"] == "resolved",
            )

            # 4. The resolved alert fires again: a new incident, the old one stays resolved.
            await h.push(fire(CHECKOUT, starts_at=now_utc()))
            refired = await h.until(
                "a new checkout incident",
                h.incidents,
                lambda items: len(by_title(items, "CheckoutErrorRate")) == 2,
            )
            [again] = [
                i for i in by_title(refired, "CheckoutErrorRate") if i["id"] != checkout["id"]
            ]
            assert again["status"] == "open"
            assert again["fingerprint"] == checkout["fingerprint"]
            assert (await h.incident(checkout["id"]))["status"] == "resolved"
            assert len(refired) == 5

            # 5. Wrong keys: both receivers are refused with 401 on every flush (the service's
            # own counter of refused deliveries), and nothing of theirs is stored anywhere.
            await h.until(
                "401 answers to the wrong-key receivers", h.refused_count, lambda n: n >= 4
            )
            log_text = server.log_text()
            assert forged_key not in log_text
            assert tenant["ingestKey"] not in log_text
            final = await h.incidents()
            assert not by_title(final, "WrongKeyAlert")
            assert len(final) == 5
            other_admin = {"Authorization": f"Bearer {other['adminToken']}"}
            assert await h.incidents(other_admin) == []
