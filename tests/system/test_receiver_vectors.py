"""The webhook test vectors of docs/receivers.md and examples/receivers/vectors.json against the
service: the committed files are what the signing code gives now, every signature follows the
steps the page describes (recomputed here with hashlib alone, and with the `standardwebhooks`
library), and every check's verdict is the client library's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from causeflow_sdk import WebhookVerificationError, verify, verify_signature
from causeflow_sdk.models import Envelope

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "examples/receivers/vectors.json").read_text(encoding="utf-8"))


def generator() -> ModuleType:
    path = ROOT / "tools/gen_receiver_vectors.py"
    spec = importlib.util.spec_from_file_location("gen_receiver_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_vectors_are_what_the_signing_code_gives() -> None:
    stale = [
        str(rel)
        for rel, text in generator().outputs(ROOT).items()
        if (ROOT / rel).read_text(encoding="utf-8") != text
    ]
    assert not stale, (
        f"{', '.join(stale)} differ from the signing code's output; run `make reference` "
        "(or `python tools/gen_receiver_vectors.py`) and commit the result"
    )


def key_as_documented(secret: str) -> bytes:
    """docs/receivers.md §2.1 step 3."""
    if secret.startswith("whsec_"):
        rest = secret[len("whsec_") :]
        return base64.b64decode(rest + "=" * (-len(rest) % 4))
    return secret.encode("utf-8")


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_signatures_follow_the_documented_steps(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    headers = vector["headers"]
    current = vector["secrets"][0]
    digest = hmac.new(current.encode("utf-8"), body, hashlib.sha256).hexdigest()
    assert headers["X-CauseFlow-Signature"] == "sha256=" + digest
    message = f"{vector['webhookId']}.{vector['timestamp']}.".encode() + body
    entries = [
        "v1,"
        + base64.b64encode(hmac.new(key_as_documented(s), message, "sha256").digest()).decode()
        for s in vector["secrets"]
    ]
    assert headers["webhook-signature"] == " ".join(entries)
    assert headers["webhook-id"] == headers["X-CauseFlow-Delivery"] == vector["webhookId"]
    assert headers["webhook-timestamp"] == str(vector["timestamp"])
    Envelope.model_validate_json(body)  # a real event's bytes


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_the_standardwebhooks_library_signs_the_same(vector: dict[str, Any]) -> None:
    when = datetime.fromtimestamp(vector["timestamp"], tz=UTC)
    entries = vector["headers"]["webhook-signature"].split(" ")
    for secret, entry in zip(vector["secrets"], entries, strict=True):
        library = Webhook(secret if secret.startswith("whsec_") else secret.encode("utf-8"))
        assert library.sign(vector["webhookId"], when, vector["body"]) == entry


@pytest.mark.parametrize("check", DOC["checks"], ids=lambda c: c["name"])
def test_every_verdict_is_the_client_librarys(check: dict[str, Any]) -> None:
    body = check["body"].encode("utf-8")
    args = (body, check["headers"], check["secrets"])
    if check["valid"]:
        verify_signature(*args, now=check["now"])
        assert isinstance(verify(*args, now=check["now"]), Envelope)
    else:
        with pytest.raises(WebhookVerificationError):
            verify_signature(*args, now=check["now"])


def test_the_checks_cover_both_verdicts_and_both_schemes() -> None:
    verdicts = {c["valid"] for c in DOC["checks"]}
    schemes = {
        "standard" if any(k.lower() == "webhook-signature" for k in c["headers"]) else "hex"
        for c in DOC["checks"]
    }
    assert verdicts == {True, False} and schemes == {"standard", "hex"}
    assert DOC["toleranceSeconds"] == 300


def test_the_page_links_the_examples_and_is_linked() -> None:
    page = (ROOT / "docs/receivers.md").read_text(encoding="utf-8")
    for path in ("python/receiver.py", "node/receiver.mjs", "go"):
        assert (ROOT / "examples/receivers" / path).exists()
        assert f"examples/receivers/{path}" in page
    assert "(docs/receivers.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(receivers.md)" in (ROOT / "docs/reference.md").read_text(encoding="utf-8")
