"""A client that sends another request behind its stream on the same connection (HTTP/1.1
pipelining) still frees the stream's slot when it leaves, or when the server ends the stream.

uvicorn queues the pipelined request and from then on tells only that one of the connection's
loss: the stream's own `receive()` never reports the disconnect.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.stream.live import FAST, STREAM, LiveService, live_service
from tests.support.inproc import Tenant, make_settings

pytestmark = pytest.mark.integration


async def _pipelined_stream(
    svc: LiveService, tenant: Tenant
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream opened with a second request sent right behind it; its preamble read."""
    port = int(svc.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {STREAM} HTTP/1.1\r\nHost: x\r\nX-API-Key: {tenant.api_key}\r\n\r\n".encode()
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await writer.drain()
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        await reader.readuntil(b"stream open\n\n")
    return reader, writer


async def _until_released(svc: LiveService, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while svc.hub.connections():
            await asyncio.sleep(0.05)


async def test_a_pipelining_client_that_leaves_frees_its_slot(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=1, **FAST)
    async with live_service(settings) as svc:
        acme = await svc.tenant()
        _, writer = await _pipelined_stream(svc, acme)
        writer.transport.abort()
        await _until_released(svc)
        # The tenant's only slot admits a new stream.
        _, writer = await _pipelined_stream(svc, acme)
        writer.close()


async def test_a_pipelined_stream_the_server_ends_frees_its_slot(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=1, **FAST)
    async with live_service(settings) as svc:
        acme = await svc.tenant()
        reader, writer = await _pipelined_stream(svc, acme)
        [conn] = svc.hub.connections()
        conn.end("ended by the server")
        async with asyncio.timeout(10):
            assert (await reader.read()).endswith(b"0\r\n\r\n")  # the response's last chunk
        await _until_released(svc)
        writer.close()


async def test_a_pipelining_http10_client_that_leaves_is_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """HTTP/1.0 streams go through `QueueSink` and ASGI `send`: once the client has left,
    a frame sent to it ends the stream, not an application error with its traceback (uvicorn
    still says in one line that the response was not completed: it never learnt the client
    left)."""
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=1, **FAST)
    async with live_service(settings) as svc:
        acme = await svc.tenant()
        port = int(svc.base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        keep = b"Host: x\r\nConnection: keep-alive\r\n"
        writer.write(
            f"GET {STREAM} HTTP/1.0\r\nX-API-Key: {acme.api_key}\r\n".encode()
            + keep
            + b"\r\nGET /healthz HTTP/1.0\r\n"
            + keep
            + b"\r\n"
        )
        async with asyncio.timeout(10):
            await reader.readuntil(b"stream open\n\n")
        writer.transport.abort()
        await _until_released(svc)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
