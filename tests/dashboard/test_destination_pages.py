"""The subscription pages for each destination type: the form's type and option fields go
through the API (its validation, its masking of credentials) and come back on the pages."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.dashboard import csrf_token, sign_in
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

# type -> (URL with credentials, the form's option fields, the options the API stores,
#          the URL as the API reads it back)
CASES: dict[str, tuple[str, dict[str, str], dict[str, Any], str]] = {
    "redis": (
        "redis://app:s3cret-r@127.0.0.1:6379/0",
        {"redis.stream": "cf.incidents", "redis.maxLen": "5000"},
        {"stream": "cf.incidents", "maxLen": 5000},
        "redis://app:****@127.0.0.1:6379/0",
    ),
    "nats": (
        "nats://app:s3cret-n@127.0.0.1:4222",
        {"nats.subject": "cf.incidents.created", "nats.stream": "CF"},
        {"subject": "cf.incidents.created", "stream": "CF"},
        "nats://app:****@127.0.0.1:4222",
    ),
    "rabbitmq": (
        "amqp://guest:s3cret-a@127.0.0.1:5672/",
        {"rabbitmq.exchange": "cf.events", "rabbitmq.routingKey": "incident.created"},
        {"exchange": "cf.events", "routingKey": "incident.created"},
        "amqp://guest:****@127.0.0.1:5672/",
    ),
    "mqtt": (
        "mqtt://app:s3cret-m@127.0.0.1:1883",
        {"mqtt.topic": "cf/incidents", "mqtt.qos": "2"},
        {"topic": "cf/incidents", "qos": 2},
        "mqtt://app:****@127.0.0.1:1883",
    ),
}


@pytest.fixture
async def acme(sqlite_service: Service) -> Tenant:
    tenant = await sqlite_service.tenant("acme")
    response = await sign_in(sqlite_service.client, tenant.api_key)
    assert response.status_code == 303
    return tenant


@pytest.fixture
def client(sqlite_service: Service) -> httpx.AsyncClient:
    return sqlite_service.client


async def create(client: httpx.AsyncClient, fields: dict[str, Any]) -> httpx.Response:
    token = csrf_token((await client.get("/ui/subscriptions")).text)
    return await client.post(
        "/ui/subscriptions", data={"csrf_token": token, "events": "*", **fields}
    )


@pytest.mark.parametrize("type_", sorted(CASES))
async def test_each_type_is_created_from_the_form_and_shown(
    client: httpx.AsyncClient, acme: Tenant, type_: str
) -> None:
    url, fields, options, masked = CASES[type_]
    created = await create(client, {"type": type_, "url": url, **fields})
    assert created.status_code == 201, created.text
    password = url.split(":")[2].split("@")[0]
    assert masked in created.text and password not in created.text

    [item] = (await client.get("/v1/webhook-subscriptions", headers=acme.key_headers)).json()[
        "items"
    ]
    assert (item["type"], item["options"], item["url"]) == (type_, options, masked)

    listing = await client.get("/ui/subscriptions")
    row = re.search(rf"<tr>.*?/ui/subscriptions/{item['id']}.*?</tr>", listing.text, re.S)
    assert row, listing.text
    assert f'data-type="{type_}"' in row.group(0) and masked in row.group(0)
    for value in options.values():
        assert f"<code>{value}</code>" in row.group(0)
    assert password not in listing.text

    detail = await client.get(f"/ui/subscriptions/{item['id']}")
    assert detail.status_code == 200
    assert f'data-type="{type_}"' in detail.text and masked in detail.text
    assert password not in detail.text
    # the edit form is filled with the type and its options
    assert re.search(rf'<option value="{type_}" selected>', detail.text)
    for key, value in fields.items():
        if key != "mqtt.qos":
            assert f'name="{key}" type="text" value="{value}"' in detail.text
    assert '<option value="2" selected>' in detail.text or type_ != "mqtt"


async def test_the_edit_form_sends_the_masked_url_back_and_keeps_the_credentials(
    client: httpx.AsyncClient, acme: Tenant, sqlite_service: Service
) -> None:
    url, fields, _, masked = CASES["redis"]
    assert (await create(client, {"type": "redis", "url": url, **fields})).status_code == 201
    [item] = (await client.get("/v1/webhook-subscriptions", headers=acme.key_headers)).json()[
        "items"
    ]
    page = await client.get(f"/ui/subscriptions/{item['id']}")
    saved = await client.post(
        f"/ui/subscriptions/{item['id']}",
        data={
            "csrf_token": csrf_token(page.text),
            "type": "redis",
            "url": masked,
            "events": "incident.created",
            "redis.stream": "cf.renamed",
            "redis.maxLen": "",
        },
    )
    assert saved.status_code == 303, saved.text
    now = (
        await client.get(f"/v1/webhook-subscriptions/{item['id']}", headers=acme.key_headers)
    ).json()
    assert (now["url"], now["options"]) == (masked, {"stream": "cf.renamed", "maxLen": None})
    # the stored credentials are still the ones first sent: another host does not inherit them
    moved = await client.post(
        f"/ui/subscriptions/{item['id']}",
        data={
            "csrf_token": csrf_token(page.text),
            "type": "webhook",
            "url": "http://127.0.0.1:9/hook",
            "events": "*",
        },
    )
    assert moved.status_code == 303, moved.text
    back = (
        await client.get(f"/v1/webhook-subscriptions/{item['id']}", headers=acme.key_headers)
    ).json()
    assert (back["type"], back["options"], back["url"]) == (
        "webhook",
        None,
        "http://127.0.0.1:9/hook",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (
            {
                "type": "redis",
                "url": "redis://127.0.0.1:6379/0",
                "redis.stream": "s",
                "redis.maxLen": "lots",
            },
            "maxLen",
        ),
        ({"type": "redis", "url": "redis://127.0.0.1:6379/0", "redis.stream": ""}, "stream"),
        ({"type": "nats", "url": "nats://127.0.0.1:4222", "nats.subject": "cf.>"}, "subject"),
        (
            {"type": "mqtt", "url": "mqtt://127.0.0.1:1883", "mqtt.topic": "cf/#", "mqtt.qos": "0"},
            "topic",
        ),
        (
            {
                "type": "rabbitmq",
                "url": "amqp://127.0.0.1:5672/",
                "rabbitmq.exchange": "a b",
                "rabbitmq.routingKey": "k",
            },
            "exchange",
        ),
        ({"type": "redis", "url": "https://127.0.0.1/hook", "redis.stream": "s"}, "url"),
        ({"type": "kafka", "url": "kafka://127.0.0.1:9092"}, "type"),
    ],
)
async def test_a_bad_option_shows_the_apis_error_in_the_form(
    client: httpx.AsyncClient, acme: Tenant, fields: dict[str, str], field: str
) -> None:
    refused = await create(client, {**fields, "description": XSS})
    assert refused.status_code == 422, refused.text
    alert = re.search(r'id="form-error">(.*?)</div>', refused.text, re.S)
    assert alert and field in alert.group(1), refused.text
    assert XSS not in refused.text
    # what was typed stays in the form
    assert (
        f'<option value="{fields["type"]}" selected>' in refused.text or fields["type"] == "kafka"
    )
    listed = (await client.get("/v1/webhook-subscriptions", headers=acme.key_headers)).json()
    assert listed["items"] == []


async def test_option_values_are_escaped_on_every_page(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    created = await create(
        client, {"type": "redis", "url": "redis://127.0.0.1:6379/0", "redis.stream": XSS}
    )
    assert created.status_code == 201, created.text
    assert ESCAPED in created.text and XSS not in created.text
    [item] = (await client.get("/v1/webhook-subscriptions", headers=acme.key_headers)).json()[
        "items"
    ]
    assert item["options"] == {"stream": XSS, "maxLen": None}
    for path in ("/ui/subscriptions", f"/ui/subscriptions/{item['id']}"):
        page = await client.get(path)
        assert page.status_code == 200
        assert ESCAPED in page.text and XSS not in page.text
