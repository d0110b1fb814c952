"""The delivery engine presenting client certificates (mTLS) and authenticating deliveries
(bearer, OAuth2 client credentials) against real loopback receivers and a token endpoint."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
import trustme

from causeflow.webhook.deliveryauth import DeliveryAuth

from .delivery_support import (
    add_deliveries,
    add_event,
    attempts_of,
    bare_context,
    running_engine,
    wait_attempts,
    wait_until_settled,
)
from .egress_support import Hooks, TokenEndpoint, client_pem, egress_sub, oauth, server_context

pytestmark = pytest.mark.integration


async def test_mtls_the_right_certificate_is_accepted_and_none_is_a_retried_failure(
    tmp_path: Path, database_url: str
) -> None:
    server_ca, client_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    ca_file = tmp_path / "ca.pem"
    server_ca.cert_pem.write_to_path(str(ca_file))
    hooks = await Hooks(server_context(server_ca, "127.0.0.1", client_ca=client_ca)).start()
    try:
        async with bare_context(tmp_path, database_url, webhook_ca_file=str(ca_file)) as ctx:
            good = await egress_sub(ctx, hooks.url(), tls=client_pem(client_ca, "good-client"))
            bare = await egress_sub(ctx, hooks.url())
            stranger = await egress_sub(ctx, hooks.url(), tls=client_pem(other_ca, "stranger"))
            [m_good] = await add_deliveries(ctx, good, await add_event(ctx))
            [m_bare] = await add_deliveries(ctx, bare, await add_event(ctx))
            [m_stranger] = await add_deliveries(ctx, stranger, await add_event(ctx))
            async with running_engine(ctx):
                [row] = await wait_until_settled(ctx, [m_good])
                bare_row = await wait_attempts(ctx, m_bare, 2)
                stranger_row = await wait_attempts(ctx, m_stranger, 2)
                bare_attempts = await attempts_of(ctx, m_bare)
    finally:
        await hooks.stop()
    assert row.status == "succeeded"
    assert len(hooks.seen) == 1
    peer = hooks.seen[0].peer_cert
    assert peer is not None
    assert ("DNS", "good-client") in peer["subjectAltName"]
    # without the certificate (or with one of another CA): a failed attempt, tried again
    for failed in (bare_row, stranger_row):
        assert failed.attempts >= 2 and failed.last_status_code is None
        assert failed.last_error
    assert all(a.status_code is None and a.error for a in bare_attempts)


async def test_bearer_token_is_sent(tmp_path: Path, database_url: str) -> None:
    hooks = await Hooks().start()
    try:
        async with bare_context(tmp_path, database_url) as ctx:
            sub = await egress_sub(
                ctx,
                hooks.url(),
                auth=DeliveryAuth(type="bearer", token="static-token.1"),
                headers={"authorization": "an extra header", "X-Team": "a"},
            )
            msgs = await add_deliveries(ctx, sub, await add_event(ctx), 2)
            async with running_engine(ctx):
                rows = await wait_until_settled(ctx, msgs)
    finally:
        await hooks.stop()
    assert {(r.status, r.last_error) for r in rows} == {("succeeded", None)}
    assert [s.authorizations for s in hooks.seen] == [["Bearer static-token.1"]] * 2
    assert hooks.seen[0].headers["X-Team"] == "a"


async def test_oauth2_one_token_fetch_serves_many_deliveries(
    tmp_path: Path, database_url: str
) -> None:
    hooks = await Hooks().start()
    tokens = await TokenEndpoint().start()
    try:
        async with bare_context(tmp_path, database_url) as ctx:
            sub = await egress_sub(
                ctx, hooks.url(), auth=oauth(tokens, scope="hooks:write", audience="receiver")
            )
            msgs = await add_deliveries(ctx, sub, await add_event(ctx), 12)
            async with running_engine(ctx):
                rows = await wait_until_settled(ctx, msgs)
    finally:
        await hooks.stop()
        await tokens.stop()
    assert {r.status for r in rows} == {"succeeded"}
    assert tokens.fetches == 1
    assert {s.headers["Authorization"] for s in hooks.seen} == {"Bearer tok-1"}
    assert tokens.forms == [
        {"grant_type": "client_credentials", "scope": "hooks:write", "audience": "receiver"}
    ]
    scheme, encoded = tokens.authorizations[0].split(" ")
    assert scheme == "Basic"
    # client id and secret are form-encoded before Basic (RFC 6749 §2.3.1)
    assert base64.b64decode(encoded).decode() == "client-1:shh%3Asecret"


async def test_oauth2_token_is_fetched_again_after_it_expires(
    tmp_path: Path, database_url: str
) -> None:
    hooks = await Hooks().start()
    tokens = await TokenEndpoint(expires_in=1).start()
    try:
        async with bare_context(tmp_path, database_url) as ctx:
            sub = await egress_sub(ctx, hooks.url(), auth=oauth(tokens))
            async with running_engine(ctx):
                first = await add_deliveries(ctx, sub, await add_event(ctx))
                await wait_until_settled(ctx, first)
                second = await add_deliveries(ctx, sub, await add_event(ctx))
                await wait_until_settled(ctx, second)
                assert tokens.fetches == 1  # still fresh
                await asyncio.sleep(1.0)
                third = await add_deliveries(ctx, sub, await add_event(ctx))
                await wait_until_settled(ctx, third)
    finally:
        await hooks.stop()
        await tokens.stop()
    assert tokens.fetches == 2
    assert [s.headers["Authorization"] for s in hooks.seen] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_a_failing_token_endpoint_is_a_failed_attempt_and_retried(
    tmp_path: Path, database_url: str
) -> None:
    hooks = await Hooks().start()
    tokens = await TokenEndpoint(status=500).start()
    try:
        async with bare_context(
            tmp_path, database_url, webhook_retry_schedule="0.2s,0.2s,0.2s,0.2s,0.2s,0.2s"
        ) as ctx:
            sub = await egress_sub(ctx, hooks.url(), auth=oauth(tokens))
            [msg] = await add_deliveries(ctx, sub, await add_event(ctx))
            async with running_engine(ctx):
                failing = await wait_attempts(ctx, msg, 2)
                tokens.status = 200
                [row] = await wait_until_settled(ctx, [msg])
                logged = await attempts_of(ctx, msg)
    finally:
        await hooks.stop()
        await tokens.stop()
    assert failing.status == "pending"
    assert logged[0].error == "auth_error: token endpoint answered HTTP 500"
    assert logged[0].status_code is None
    assert row.status == "succeeded"
    assert len(hooks.seen) == 1  # nothing was sent without a token


async def test_a_401_drops_the_token_and_the_next_attempt_fetches_a_new_one(
    tmp_path: Path, database_url: str
) -> None:
    hooks = await Hooks(status=401).start()
    tokens = await TokenEndpoint().start()
    try:
        async with bare_context(tmp_path, database_url) as ctx:
            sub = await egress_sub(ctx, hooks.url(), auth=oauth(tokens))
            [msg] = await add_deliveries(ctx, sub, await add_event(ctx))
            async with running_engine(ctx):
                await wait_attempts(ctx, msg, 1)
                hooks.status = 204
                [row] = await wait_until_settled(ctx, [msg])
    finally:
        await hooks.stop()
        await tokens.stop()
    assert row.status == "succeeded"
    assert tokens.fetches == 2
    assert [s.headers["Authorization"] for s in hooks.seen] == ["Bearer tok-1", "Bearer tok-2"]
