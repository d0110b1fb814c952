"""Every provider fixture end to end through the HTTP endpoint.

Each case of `tests/support/fixtures/providers/<provider>/expected.json` is posted, as a monitoring
tool would, to a fresh tenant of one running service (SQLite; SNS envelopes re-signed for the local
stand-in of AWS). The answer must name the expected fingerprints in order with the actions the
dedup rules give, each opened incident must carry the alert's title, severity and provider, and
a re-delivery with the same delivery id must get the same bytes back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from tests.ingest.conftest import (
    FakeSns,
    TlsFiles,
    inbound_settings_overrides,
    serving_fake_sns,
)
from tests.ingest.test_sns import SigningIdentity
from tests.support.inbound import post
from tests.support.inproc import Service, make_settings, running_service

FIXTURES = Path(__file__).resolve().parent.parent / "support" / "fixtures" / "providers"


def cases() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for directory in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        expected = orjson.loads((directory / "expected.json").read_bytes())
        for name, case in sorted(expected.items()):
            yield directory.name, name, case


CASES = list(cases())


def expected_actions(alerts: list[dict[str, Any]]) -> list[str]:
    """What a fresh tenant's answer must say for these alerts, in order."""
    open_: set[str] = set()
    out = []
    for a in alerts:
        fingerprint = a["fingerprint"]
        if a["status"] == "resolved":
            out.append("resolved" if fingerprint in open_ else "ignored")
            open_.discard(fingerprint)
        else:
            out.append("attached" if fingerprint in open_ else "created")
            open_.add(fingerprint)
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, sns_tls: TlsFiles
) -> AsyncIterator[Service]:
    settings = make_settings(
        tmp_path_factory.mktemp("fixtures-e2e"), "", **inbound_settings_overrides(sns_tls)
    )
    async with running_service(settings) as svc:
        yield svc


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sns(sns_tls: TlsFiles, sns_identity: SigningIdentity) -> AsyncIterator[FakeSns]:
    async with serving_fake_sns(sns_tls, sns_identity) as state:
        yield state


@pytest.mark.unit
def test_there_are_fixtures_for_every_provider() -> None:
    from causeflow.ingest.providers.registry import PROVIDERS

    assert {provider for provider, _, _ in CASES} == set(PROVIDERS)


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("provider", "name", "case"), CASES, ids=[f"{p}/{n}" for p, n, _ in CASES])
async def test_fixture_end_to_end(
    shared: Service, shared_sns: FakeSns, provider: str, name: str, case: dict[str, Any]
) -> None:
    service = shared
    tenant = await service.tenant(f"{provider}-{name}")
    body = (FIXTURES / provider / name).read_bytes()
    headers = dict(case.get("headers", {}))
    if name.endswith(".txt"):  # an SNS envelope: signed now, for the local AWS stand-in
        body = shared_sns.sign(orjson.loads(body), now_ms=service.ctx.clock.now_ms())
        headers["Content-Type"] = "text/plain; charset=UTF-8"

    resp = await post(service, tenant, body, provider=provider, headers=headers)
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert answer["status"] == "accepted" and answer["provider"] == provider
    expected = case["alerts"]
    assert [a["fingerprint"] for a in answer["alerts"]] == [a["fingerprint"] for a in expected]
    assert [a["action"] for a in answer["alerts"]] == expected_actions(expected)

    for got, want in zip(answer["alerts"], expected, strict=True):
        if got["action"] != "created":
            continue
        detail = await service.client.get(
            f"/v1/incidents/{got['incidentId']}", headers=tenant.admin_headers
        )
        incident = detail.json()
        assert (incident["title"], incident["severity"], incident["source"]) == (
            want["title"],
            want["severity"],
            provider,
        )
        assert incident["status"] == "open" and incident["fingerprint"] == want["fingerprint"]
        assert [e["event"] for e in incident["events"]] == ["incident.created"]

    if case.get("sns") == "subscription_confirmation":
        assert "/confirm" in shared_sns.requests
    if case["delivery_id"] is not None:
        again = await post(service, tenant, body, provider=provider, headers=headers)
        assert again.status_code == 202 and again.content == resp.content
