"""Cursors are opaque but travel through the client: a forged one whose integer no database
column can hold is the client's mistake (`422`, path `cursor`), on every route that pages by a
number."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.support.inproc import Service, Tenant
from tests.support.webhook import SUBS, create_sub

pytestmark = pytest.mark.integration


def _forged(*key: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


@pytest.mark.parametrize("number", [2**63, 2**64 - 1])
async def test_a_cursor_beyond_64_bits_is_refused(service: Service, tenant: Tenant, number: int):
    sub = await create_sub(service, tenant)
    routes = [
        ("/v1/deliveries", _forged(number, "msg_x")),
        (f"{SUBS}/{sub['id']}/deliveries", _forged(number, "msg_x")),
        ("/v1/incidents", _forged(number, "inc_x")),
        ("/v1/events", _forged(number)),
    ]
    for path, cursor in routes:
        resp = await service.client.get(
            path, headers=tenant.admin_headers, params={"cursor": cursor}
        )
        assert resp.status_code == 422, (path, resp.text)
        body = resp.json()
        assert body["error"] == "validation_error"
        assert body["details"]["errors"][0]["path"] == "cursor"
