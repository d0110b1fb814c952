"""A real `causeflow serve`: a `POST /v1/events` whose client goes away before the end of its
body (a chunked upload without its last chunk, a declared length not reached, with and without
an `Idempotency-Key`) publishes nothing, even when what came is a whole JSON document; the
access log says 400 for each, and the next publish goes through."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest

from causeflow_sdk.models import sample_data
from tests.support.serve import live_service

pytestmark = pytest.mark.process


def _send_and_leave(port: int, head: bytes, body: bytes) -> None:
    """Send the request head and part of a body, then close the connection without reading."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head + body)
        time.sleep(0.2)  # the server reads what came before it sees the connection go


def _head(key: str, *lines: str) -> bytes:
    fields = ["Host: cf.test", f"X-API-Key: {key}", "Content-Type: application/json", *lines]
    return ("POST /v1/events HTTP/1.1\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()


def test_a_publish_cut_off_by_its_client_is_not_published(tmp_path: Path) -> None:
    with live_service(tmp_path) as live:
        port = live.server.port
        assert port is not None
        document = orjson.dumps(
            {"event": "incident.created", "data": sample_data("incident.created", title="cut")}
        )
        chunk = f"{len(document):x}\r\n".encode() + document + b"\r\n"  # no last chunk
        _send_and_leave(port, _head(live.api_key, "Transfer-Encoding: chunked"), chunk)
        declared = f"Content-Length: {len(document) + 4}"  # the trailing spaces never come
        _send_and_leave(port, _head(live.api_key, declared), document)
        _send_and_leave(port, _head(live.api_key, declared, "Idempotency-Key: cut"), document)

        headers = {"X-API-Key": live.api_key}
        deadline = time.monotonic() + 10
        while live.server.log_text().count("POST /v1/events 400") < 3:
            assert time.monotonic() < deadline, live.server.log_tail()
            time.sleep(0.05)
        with httpx.Client(base_url=live.url, headers=headers, timeout=10) as client:
            published = client.post(
                "/v1/events", content=document, headers={"Content-Type": "application/json"}
            )
            assert published.status_code == 201, published.text
            page = client.get("/v1/events", params={"event": "incident.created"}).json()
        assert [e["id"] for e in page["items"]] == [published.json()["id"]]
        assert "POST /v1/events 500" not in live.server.log_text()
