"""What clients send never forges or bloats a log line, and credentials in a query string never
reach the log, however their names are spelt on the wire."""

from __future__ import annotations

import http.client
import logging
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.inproc import Service, Tenant
from tests.support.processes import Deployment

FORGED = "2099-01-01 00:00:00,000 INFO x: FORGED"
# How a line of the service's log may start: a record of the service, a traceback line under
# one, uvicorn's own records, the test harness's markers.
LINE_START = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ causeflow\.|  \| |[A-Z]+: |--- )"
)


@pytest.fixture
def backend() -> str:
    """Nothing here is stored: SQLite alone keeps this fast."""
    return "sqlite"


def _requests(tenant_id: str, own_key: str, foreign_key: str) -> list[tuple[str, bytes, int]]:
    """(request target, body, expected status): every one is refused and logged."""
    inbound = f"/v1/webhooks/{tenant_id}"
    forged = FORGED.replace(" ", "%20")
    return [
        # A newline in the tenant id, a key under a percent-encoded name.
        (f"{inbound}%0A{forged}/custom?api%4Bey={foreign_key}", b"{}", 401),
        (f"{inbound}%0D%0A{forged}/custom?x=1&%61piKey={foreign_key}", b"{}", 401),
        # The tenant's own key under an encoded name authenticates (the payload is refused).
        (f"{inbound}/custom?%61piKey={own_key}", b"{not json", 400),
        # Credential names are case-sensitive, their redaction is not.
        (f"{inbound}/custom?API%4BEY={own_key}&t=%E2%80%A8", b"[]", 401),
        # Other spellings and separators, a token, and a provider with a line break.
        (f"{inbound}/custom?a=1;apiKey={foreign_key}&token=eyJhbGciOiJI.eyJzdWIi.sig", b"{}", 401),
        (f"{inbound}/cust%0Aom%2028?api_key={foreign_key}", b"{}", 404),
        # A tenant id far longer than any real one.
        (f"/v1/webhooks/{'t' * 5000}/custom?apiKey={foreign_key}", b"{}", 401),
    ]


def _check_log(text: str, secrets: list[str]) -> None:
    refused = [line for line in text.splitlines() if "refused" in line]
    assert len(refused) == 7, text[-3000:]
    lines = text.splitlines()
    written = lines[lines.index(refused[0]) :]  # while our requests were answered
    for line in filter(None, written):
        assert LINE_START.match(line), f"a line no record starts: {line[:200]!r}"
        assert len(line) < 800, f"an unbounded line: {line[:200]}..."
    # The forged lines are there, escaped, inside the lines of their records.
    assert "\\n" + FORGED in text and "\\r\\n" + FORGED in text
    for secret in secrets:
        assert secret not in "\n".join(written)
    for redacted in ("api%4Bey=***", "%61piKey=***", "API%4BEY=***", "apiKey=***", "token=***"):
        assert redacted in text, redacted


@pytest.mark.integration
async def test_log_lines_escape_bound_and_redact_client_text(
    service: Service, tenant: Tenant, other_tenant: Tenant, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="causeflow")
    for target, body, status in _requests(tenant.id, tenant.ingest_key, other_tenant.ingest_key):
        resp = await service.client.post(
            target, content=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == status, (target[:100], resp.text)
    records = [r for r in caplog.records if r.name.startswith("causeflow")]
    for record in records:  # the values themselves, before any formatter
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage()
        assert "\u2028" not in record.getMessage()
    # As the service's handler writes them (`cli.configure_logging`).
    from causeflow.logtext import LogFormatter

    formatter = LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    text = "\n".join(formatter.format(r) for r in records)
    _check_log(text, [tenant.ingest_key, other_tenant.ingest_key, "eyJhbGciOiJI.eyJzdWIi.sig"])


@pytest.mark.process
def test_a_real_process_writes_one_line_per_record(tmp_path: Path) -> None:
    with Deployment(tmp_path) as deployment:
        # migrates, and creates a first tenant whose credentials go to a file (not a terminal)
        server = deployment.add_server()
        first = deployment.first_run_credentials()
        tenant_id, ingest_key = first["tenantId"], first["ingestKey"]
        assert ingest_key not in server.log_text()
        foreign = "cflo_" + "0" * 64
        address = urlsplit(server.base_url)
        for target, body, status in _requests(tenant_id, ingest_key, foreign):
            conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
            try:
                conn.request(
                    "POST", target, body=body, headers={"Content-Type": "application/json"}
                )
                assert conn.getresponse().status == status, target[:100]
            finally:
                conn.close()
        deadline = time.monotonic() + 10
        while server.log_text().count("refused") < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        _check_log(server.log_text(), [ingest_key, foreign, "eyJhbGciOiJI.eyJzdWIi.sig"])
