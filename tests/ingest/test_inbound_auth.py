"""Who may post alerts, and with which signatures: every refusal mode, and that it stores nothing.

Runs through the real app (gateway included), with SNS verified against a local https
stand-in for AWS.
"""

from __future__ import annotations

import base64
import logging
import secrets
from pathlib import Path

import orjson
import pytest

from tests.ingest.conftest import FakeSns
from tests.ingest.test_sns import SigningIdentity
from tests.support.inbound import alert, count_rows, post, sign
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "support" / "fixtures" / "providers"
TOPIC = "arn:aws:sns:us-east-1:123456789012:causeflow-alarms"


@pytest.fixture
def backend() -> str:
    """Keys and signatures are checked before any storage: SQLite alone keeps this module fast."""
    return "sqlite"


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


async def set_inbound(service: Service, tenant: Tenant, **inbound: object) -> None:
    resp = await service.client.patch(
        "/v1/tenant", headers=tenant.admin_headers, json={"inbound": inbound}
    )
    assert resp.status_code == 200, resp.text


async def key_with_scopes(service: Service, tenant: Tenant, scopes: list[str]) -> str:
    resp = await service.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": "k", "scopes": scopes}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["key"]


# --- keys ------------------------------------------------------------------------------------


async def test_unknown_provider_is_404(service: Service, tenant: Tenant):
    resp = await post(service, tenant, alert(), provider="zabbix")
    assert resp.status_code == 404
    assert resp.json()["error"] == "unknown_provider"


@pytest.mark.parametrize("where", ["x-api-key", "bearer", "basic", "query"])
async def test_the_key_is_accepted_in_each_of_its_four_places(
    service: Service, tenant: Tenant, where: str
):
    key = tenant.ingest_key
    headers: dict[str, str] = {}
    params = None
    if where == "x-api-key":
        headers["X-API-Key"] = key
    elif where == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif where == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"grafana:{key}".encode()).decode()
    else:
        params = {"apiKey": key}
    resp = await post(service, tenant, alert(), headers=headers, params=params, send_key=False)
    assert resp.status_code == 202, resp.text
    assert resp.json()["alerts"][0]["action"] == "created"


async def test_refusals_store_nothing(service: Service, tenant: Tenant, other_tenant: Tenant):
    read_key = await key_with_scopes(service, tenant, ["events:read", "events:publish"])
    before = await count_rows(service)
    cases = [
        ({"send_key": False}, 401, "unauthorized"),
        ({"key": "cflo_" + secrets.token_hex(32)}, 401, "invalid_api_key"),
        ({"key": "not-a-key"}, 401, "invalid_api_key"),
        ({"key": other_tenant.ingest_key}, 401, "invalid_api_key"),
        ({"key": other_tenant.api_key}, 401, "invalid_api_key"),
        ({"key": read_key}, 403, "forbidden"),
        ({"send_key": False, "headers": tenant.admin_headers}, 401, "invalid_api_key"),
        ({"send_key": False, "params": {"apiKey": other_tenant.ingest_key}}, 401, None),
        (
            {"send_key": False, "headers": {"Authorization": "Basic !!notbase64"}},
            401,
            "unauthorized",
        ),
    ]
    for kwargs, status, code in cases:
        resp = await post(service, tenant, alert(), **kwargs)  # type: ignore[arg-type]
        assert resp.status_code == status, (kwargs, resp.text)
        if code:
            assert resp.json()["error"] == code, (kwargs, resp.text)
    assert await count_rows(service) == before


async def test_an_ingest_key_may_not_read_incidents(service: Service, tenant: Tenant):
    resp = await service.client.get("/v1/incidents", headers={"X-API-Key": tenant.ingest_key})
    assert resp.status_code == 403


async def test_query_credentials_never_reach_the_log(
    service: Service, tenant: Tenant, other_tenant: Tenant, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="causeflow")
    foreign = other_tenant.ingest_key
    resp = await post(service, tenant, alert(), send_key=False, params={"apiKey": foreign})
    assert resp.status_code == 401
    ok = await post(service, tenant, alert(), send_key=False, params={"apiKey": tenant.ingest_key})
    assert ok.status_code == 202
    # Everything the service logged (the test's own HTTP client logs its URLs; not ours).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("causeflow"))
    assert "apiKey=***" in ours  # the refusal was logged, redacted
    assert foreign not in ours and tenant.ingest_key not in ours


# --- HMAC signatures -------------------------------------------------------------------------

# provider -> (fixture, header, how the header carries a hex digest, tenant secret name or None)
SIGNERS = {
    "custom": ("firing.json", "X-Webhook-Signature", "sha256={}", None),
    "sentry": ("issue_alert.json", "Sentry-Hook-Signature", "{}", "sentry"),
    "pagerduty": ("v3_incident_triggered.json", "X-PagerDuty-Signature", "v1={}", "pagerduty"),
    "grafana": ("unified_firing.json", "X-Grafana-Alerting-Signature", "{}", "grafana"),
}


@pytest.mark.parametrize("provider", sorted(SIGNERS))
async def test_wrong_signature_is_401_and_the_right_one_is_accepted(
    service: Service, tenant: Tenant, provider: str
):
    name, header, form, secret_name = SIGNERS[provider]
    secret = tenant.webhook_secret
    if secret_name is not None:
        secret = "provider-secret-" + secrets.token_hex(8)
        await set_inbound(service, tenant, secrets={secret_name: secret})
    body = fixture(provider, name)
    before = await count_rows(service)
    wrong = await post(
        service,
        tenant,
        body,
        provider=provider,
        headers={header: form.format(sign("not-the-secret", body))},
    )
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["error"] == "invalid_signature"
    assert await count_rows(service) == before

    right = await post(
        service, tenant, body, provider=provider, headers={header: form.format(sign(secret, body))}
    )
    assert right.status_code == 202, right.text


async def test_generic_signature_is_checked_for_every_provider(service: Service, tenant: Tenant):
    body = fixture("alertmanager", "firing_multiple.json")
    resp = await post(
        service,
        tenant,
        body,
        provider="alertmanager",
        headers={"X-Webhook-Signature": "sha256=" + sign("nope", body)},
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_signature"


async def test_require_signature_refuses_unsigned_deliveries_from_providers_that_sign(
    service: Service, tenant: Tenant
):
    await set_inbound(service, tenant, requireSignature=True)
    body = orjson.dumps(alert())
    unsigned = await post(service, tenant, body)
    assert unsigned.status_code == 401
    assert unsigned.json()["error"] == "signature_required"

    signed = await post(
        service,
        tenant,
        body,
        headers={"X-Webhook-Signature": "sha256=" + sign(tenant.webhook_secret, body)},
    )
    assert signed.status_code == 202, signed.text
    # Alertmanager cannot sign at all: requireSignature does not lock it out.
    am = await post(
        service, tenant, fixture("alertmanager", "firing_multiple.json"), provider="alertmanager"
    )
    assert am.status_code == 202, am.text


# --- SNS -------------------------------------------------------------------------------------


def envelope(name: str) -> dict:
    return orjson.loads(fixture("cloudwatch", name))


async def test_sns_signed_by_aws_is_accepted(service: Service, tenant: Tenant, fake_sns: FakeSns):
    body = fake_sns.sign(envelope("alarm.txt"), now_ms=service.ctx.clock.now_ms())
    resp = await post(
        service, tenant, body, provider="cloudwatch", headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["alerts"][0]["action"] == "created"


@pytest.mark.parametrize("forgery", ["foreign_key", "tampered", "wrong_host", "missing_cert"])
async def test_sns_forgeries_are_401_and_store_nothing(
    service: Service, tenant: Tenant, fake_sns: FakeSns, forgery: str
):
    now = service.ctx.clock.now_ms()
    doc = envelope("alarm.txt")
    if forgery == "foreign_key":
        body = fake_sns.sign(doc, now_ms=now, identity=SigningIdentity())
    elif forgery == "tampered":
        signed = orjson.loads(fake_sns.sign(doc, now_ms=now))
        signed["Message"] = signed["Message"].replace("checkout-5xx-rate", "other-alarm")
        body = orjson.dumps(signed)
    elif forgery == "wrong_host":
        url = f"https://localhost:{fake_sns.port}/SimpleNotificationService-test.pem"
        body = fake_sns.sign(doc, now_ms=now, cert_url=url)
    else:
        body = fake_sns.sign(doc, now_ms=now, cert_url=fake_sns.url("/no-such.pem"))
    before = await count_rows(service)
    resp = await post(service, tenant, body, provider="cloudwatch")
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_signature"
    assert await count_rows(service) == before
    if forgery == "wrong_host":
        assert fake_sns.requests == []  # never fetched from a host off the allow-list


async def test_sns_topic_allow_list_and_age(service: Service, tenant: Tenant, fake_sns: FakeSns):
    now = service.ctx.clock.now_ms()
    await set_inbound(service, tenant, snsTopicArns=["arn:aws:sns:eu-west-1:1:elsewhere"])
    resp = await post(
        service, tenant, fake_sns.sign(envelope("alarm.txt"), now_ms=now), provider="cloudwatch"
    )
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_signature"

    await set_inbound(service, tenant, snsTopicArns=[TOPIC])
    ttl_ms = service.ctx.settings.delivery_id_ttl_seconds * 1000
    stale = fake_sns.sign(envelope("alarm.txt"), now_ms=now - ttl_ms - 60_000)
    resp = await post(service, tenant, stale, provider="cloudwatch")
    assert resp.status_code == 401, resp.text

    fresh = fake_sns.sign(envelope("alarm.txt"), now_ms=now)
    resp = await post(service, tenant, fresh, provider="cloudwatch")
    assert resp.status_code == 202, resp.text


async def test_sns_subscription_is_confirmed_only_after_verification(
    service: Service, tenant: Tenant, fake_sns: FakeSns
):
    now = service.ctx.clock.now_ms()
    doc = envelope("subscription_confirmation.txt")
    forged = fake_sns.sign(doc, now_ms=now, identity=SigningIdentity())
    resp = await post(service, tenant, forged, provider="cloudwatch")
    assert resp.status_code == 401
    assert "/confirm" not in fake_sns.requests

    resp = await post(service, tenant, fake_sns.sign(doc, now_ms=now), provider="cloudwatch")
    assert resp.status_code == 202, resp.text
    assert resp.json()["alerts"] == []
    assert fake_sns.requests.count("/confirm") == 1
