"""Render the webhook signature test vectors from the service's own signing code.

- `examples/receivers/vectors.json`: fixed secrets, delivery id, timestamp and body, the headers
  the delivery engine sends for them (`causeflow.webhook.signing.delivery_headers`), and checks
  a receiver must pass (valid and invalid requests). Every example receiver reads it.
- The test-vector section of `docs/receivers.md`, between `<!-- generated:begin vectors -->` and
  `<!-- generated:end -->`: the same vectors as a reader sees them.

Run `make reference` (or `python tools/gen_receiver_vectors.py`) after changing the signing code;
`--check` only reports files that differ and exits 1. `tests/system/test_receiver_vectors.py`
fails while the committed files differ from the output, and checks every verdict against the
client library's verifier.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from gen_reference import splice  # noqa: E402

VECTORS_JSON = Path("examples/receivers/vectors.json")
RECEIVERS_MD = Path("docs/receivers.md")
COMMAND = "make reference"

TOLERANCE_SECONDS = 300
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAIN = "your-signing-secret"
NEW = "whsec_" + base64.b64encode(bytes(range(32))).decode("ascii")
MSG_ID = "msg_01JD8X5Q4B2C3D4E5F6G7H8J9K"
TIMESTAMP = 1795768974  # 2026-11-27T08:42:54Z, a second after the event was recorded
# Headers that depend on the running version, left out of the vectors.
UNPINNED = {"User-Agent"}
STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


def body() -> bytes:
    """An `incident.created` envelope as the service stores it (non-ASCII text included)."""
    from causeflow_sdk.models import Envelope

    return Envelope(
        id="evt_01JD8X5Q3N4M2K1H0G9F8E7D6C",
        event="incident.created",
        timestamp="2026-11-27T08:42:53.123Z",
        tenantId="ten_01JD8X5Q3N4M2K1H0G9F8E7D6B",
        data={
            "incidentId": "inc_01JD8X5Q3N4M2K1H0G9F8E7D6A",
            "title": "Checkout is slow — p99 at 2.4 s",
            "severity": "high",
            "status": "open",
            "source": "manual",
        },
    ).to_json()


@dataclass
class Vector:
    name: str
    secrets: list[str]  # as the service signs with them: the current one first
    headers: dict[str, str] = field(default_factory=dict)

    def as_json(self, raw: bytes) -> dict[str, Any]:
        return {
            "name": self.name,
            "secrets": self.secrets,
            "webhookId": MSG_ID,
            "timestamp": TIMESTAMP,
            "body": raw.decode("utf-8"),
            "headers": self.headers,
        }


def vectors(raw: bytes) -> list[Vector]:
    """Three deliveries of the same body: a `whsec_` secret, a plain one, and a rotation."""
    from causeflow.webhook.signing import delivery_headers

    found = [
        Vector("whsec_ secret", [WHSEC]),
        Vector("plain secret", [PLAIN]),
        Vector("rotation (new secret first, old second)", [NEW, WHSEC]),
    ]
    for vector in found:
        sent = delivery_headers(
            event_type="incident.created",
            msg_id=MSG_ID,
            timestamp=TIMESTAMP,
            body=raw,
            secrets=vector.secrets,
            version="unpinned",
        )
        vector.headers = {k: v for k, v in sent.items() if k not in UNPINNED}
    return found


def _only(headers: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k in names}


def _check(
    name: str,
    vector: Vector,
    raw: bytes,
    *,
    valid: bool,
    secrets: list[str] | None = None,
    now: int = TIMESTAMP,
    headers: dict[str, str] | None = None,
    changed: bytes | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "secrets": secrets if secrets is not None else vector.secrets[-1:],
        "now": now,
        "body": (changed if changed is not None else raw).decode("utf-8"),
        "headers": headers if headers is not None else vector.headers,
        "valid": valid,
    }


def checks(raw: bytes, found: list[Vector]) -> list[dict[str, Any]]:
    """Requests a receiver must accept or refuse (with the receiver's secrets and clock)."""
    whsec, plain, rotation = found
    sig = whsec.headers["webhook-signature"]
    reparsed = json.dumps(json.loads(raw)).encode("utf-8")  # spaces after ':' and ',', \\u escapes
    return [
        _check("whsec_ secret", whsec, raw, valid=True),
        _check("plain secret", plain, raw, valid=True),
        _check("rotation, receiver still on the old secret", rotation, raw, valid=True),
        _check(
            "rotation, receiver already on the new secret", rotation, raw, valid=True, secrets=[NEW]
        ),
        _check("receiver holding two secrets", whsec, raw, valid=True, secrets=[NEW, WHSEC]),
        _check(
            "header names in another case",
            whsec,
            raw,
            valid=True,
            headers={k.upper(): v for k, v in whsec.headers.items()},
        ),
        _check(
            "timestamp exactly 5 minutes old",
            whsec,
            raw,
            valid=True,
            now=TIMESTAMP + TOLERANCE_SECONDS,
        ),
        _check("wrong secret", whsec, raw, valid=False, secrets=[NEW]),
        _check("body parsed and serialized again", whsec, raw, valid=False, changed=reparsed),
        _check(
            "body with one byte changed",
            whsec,
            raw,
            valid=False,
            changed=raw.replace(b'"high"', b'"HIGH"'),
        ),
        _check(
            "timestamp more than 5 minutes old (replay)",
            whsec,
            raw,
            valid=False,
            now=TIMESTAMP + TOLERANCE_SECONDS + 1,
        ),
        _check(
            "timestamp more than 5 minutes ahead",
            whsec,
            raw,
            valid=False,
            now=TIMESTAMP - TOLERANCE_SECONDS - 1,
        ),
        _check(
            "webhook-timestamp changed",
            whsec,
            raw,
            valid=False,
            now=TIMESTAMP + 60,
            headers={**whsec.headers, "webhook-timestamp": str(TIMESTAMP + 60)},
        ),
        _check(
            "webhook-id changed",
            whsec,
            raw,
            valid=False,
            headers={**whsec.headers, "webhook-id": MSG_ID[:-1] + "X"},
        ),
        _check(
            "unknown signature version only",
            whsec,
            raw,
            valid=False,
            headers={**whsec.headers, "webhook-signature": "v2," + sig[3:]},
        ),
        _check(
            "webhook-signature without webhook-timestamp",
            whsec,
            raw,
            valid=False,
            headers=_only(whsec.headers, "webhook-id", "webhook-signature"),
        ),
        _check(
            "hex scheme alone",
            whsec,
            raw,
            valid=True,
            headers=_only(whsec.headers, "X-CauseFlow-Signature"),
        ),
        _check(
            "hex scheme alone, plain secret",
            plain,
            raw,
            valid=True,
            headers=_only(plain.headers, "X-CauseFlow-Signature"),
        ),
        _check(
            "hex scheme alone during a rotation, old secret",
            rotation,
            raw,
            valid=False,
            headers=_only(rotation.headers, "X-CauseFlow-Signature"),
        ),
        _check(
            "no signature header",
            whsec,
            raw,
            valid=False,
            headers=_only(whsec.headers, "Content-Type", "X-CauseFlow-Event"),
        ),
    ]


def document() -> dict[str, Any]:
    """The whole content of `vectors.json`."""
    raw = body()
    found = vectors(raw)
    return {
        "about": (
            "CauseFlow webhook signature test vectors, generated by tools/gen_receiver_vectors.py "
            "from the service's signing code; see docs/receivers.md. Bodies are the UTF-8 bytes "
            "of the `body` strings."
        ),
        "toleranceSeconds": TOLERANCE_SECONDS,
        "vectors": [v.as_json(raw) for v in found],
        "checks": checks(raw, found),
    }


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _key_hex(secret: str) -> str:
    from causeflow_sdk.signatures import standard_key

    return standard_key(secret).hex()


LABELS = {WHSEC: "A", PLAIN: "B", NEW: "C"}


def render_vector(vector: dict[str, Any]) -> list[str]:
    lines = [f"#### {vector['name']}", "", "| secret | value | Standard Webhooks key (hex) |"]
    lines.append("|---|---|---|")
    for i, secret in enumerate(vector["secrets"]):
        role = "" if len(vector["secrets"]) == 1 else (" (new)", " (old)")[i]
        lines.append(f"| {LABELS[secret]}{role} | `{secret}` | `{_key_hex(secret)}` |")
    lines += [
        "",
        "Headers sent (besides `User-Agent`):",
        "",
        "```http",
        *(f"{k}: {v}" for k, v in vector["headers"].items()),
        "```",
        "",
    ]
    return lines


def render_markdown(doc: dict[str, Any]) -> str:
    first = doc["vectors"][0]
    raw = first["body"].encode("utf-8")
    lines = [
        f"Generated by `{COMMAND}` from the service's signing code; the same data, with",
        "every check below, is in",
        "[`examples/receivers/vectors.json`](../examples/receivers/vectors.json). Every vector",
        f"signs the same delivery: `webhook-id` `{first['webhookId']}`, `webhook-timestamp`",
        f"`{first['timestamp']}` and this body of {len(raw)} bytes (UTF-8, no trailing newline):",
        "",
        "```json",
        first["body"],
        "```",
        "",
        "so the Standard Webhooks message (§2.1 step 4) is these bytes:",
        "",
        "```text",
        f"{first['webhookId']}.{first['timestamp']}.{first['body']}",
        "```",
        "",
    ]
    for vector in doc["vectors"]:
        lines += render_vector(vector)
    lines += [
        "#### Checks",
        "",
        "A receiver holding the secrets shown, with its clock at the vectors' timestamp plus",
        "the offset shown, must accept or refuse (`vectors.json` has each request in full):",
        "",
        "| check | receiver's secrets | clock offset (s) | verdict |",
        "|---|---|---|---|",
    ]
    for check in doc["checks"]:
        held = ", ".join(LABELS[s] for s in check["secrets"])
        delta = check["now"] - TIMESTAMP
        verdict = "accept" if check["valid"] else "refuse"
        lines.append(f"| {check['name']} | {held} | {delta:+d} | {verdict} |")
    return "\n".join(lines) + "\n"


def outputs(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file's full expected content, relative path -> text."""
    doc = document()
    receivers = (root / RECEIVERS_MD).read_text(encoding="utf-8")
    return {
        VECTORS_JSON: render_json(doc),
        RECEIVERS_MD: splice(receivers, "vectors", render_markdown(doc), RECEIVERS_MD),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences, write nothing")
    args = parser.parse_args(argv)
    changed = []
    for rel, text in outputs().items():
        path = ROOT / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "differs" if args.check else "written"
    for rel in changed:
        print(f"{rel}: {verb}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
