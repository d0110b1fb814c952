"""SNS signing certificates through the real app: a certificate outside its validity dates is a
401 that stores nothing, and `CAUSEFLOW_SNS_CERT_CACHE_SECONDS` bounds how long one is reused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from tests.ingest.conftest import TlsFiles, inbound_settings_overrides, serving_fake_sns
from tests.ingest.test_sns import SigningIdentity
from tests.support.inbound import count_rows, post
from tests.support.inproc import Service, make_settings, running_service

pytestmark = pytest.mark.integration

ALARM = Path(__file__).resolve().parent.parent / "support/fixtures/providers/cloudwatch/alarm.txt"


@pytest.fixture
def backend() -> str:
    """Certificates are checked before any storage: SQLite alone keeps this module fast."""
    return "sqlite"


def alarm() -> dict:
    return orjson.loads(ALARM.read_bytes())


@pytest.mark.parametrize("which", ["expired", "not_yet_valid"])
async def test_a_certificate_outside_its_dates_is_401_and_stores_nothing(
    service: Service, sns_tls: TlsFiles, which: str
):
    now = dt.datetime.now(dt.UTC)
    if which == "expired":
        identity = SigningIdentity(not_before=now - dt.timedelta(days=9), not_after=now)
    else:
        identity = SigningIdentity(not_before=now + dt.timedelta(hours=1))
    tenant = await service.tenant("acme")
    async with serving_fake_sns(sns_tls, identity) as sns:
        body = sns.sign(alarm(), now_ms=service.ctx.clock.now_ms())
        before = await count_rows(service)
        resp = await post(service, tenant, body, provider="cloudwatch")
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"] == "invalid_signature"
        assert await count_rows(service) == before
        assert sns.requests == ["/SimpleNotificationService-test.pem"]


async def deliveries_fetch(svc: Service, sns_tls: TlsFiles) -> int:
    """Two SNS deliveries signed with one certificate: how many times it was downloaded."""
    tenant = await svc.tenant("acme")
    async with serving_fake_sns(sns_tls, SigningIdentity()) as sns:
        for _ in range(2):
            body = sns.sign(alarm(), now_ms=svc.ctx.clock.now_ms())
            assert (await post(svc, tenant, body, provider="cloudwatch")).status_code == 202
        return len(sns.requests)


async def test_a_certificate_is_reused_by_default(service: Service, sns_tls: TlsFiles):
    assert await deliveries_fetch(service, sns_tls) == 1


async def test_the_cache_lifetime_is_a_setting(tmp_path: Path, sns_tls: TlsFiles):
    settings = make_settings(
        tmp_path, **inbound_settings_overrides(sns_tls), sns_cert_cache_seconds=0
    )
    async with running_service(settings) as svc:
        assert await deliveries_fetch(svc, sns_tls) == 2
