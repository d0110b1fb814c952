"""A CauseFlow webhook receiver in Python: every request verified with the SDK's `verify`.

    CAUSEFLOW_WEBHOOK_SECRET=whsec_… python examples/receivers/python/receiver.py [PORT]
    python examples/receivers/python/receiver.py --selftest [VECTORS_JSON]

`CAUSEFLOW_WEBHOOK_SECRET` may hold several secrets separated by commas (a rotation). A verified
delivery is answered 204 and printed; one whose `webhook-id` was seen before is answered 204 and
not processed again; anything else is answered 400. See docs/receivers.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from causeflow_sdk import WebhookVerificationError, verify
from causeflow_sdk.signatures import causeflow_signature, standard_signature

VECTORS = Path(__file__).resolve().parent.parent / "vectors.json"
SEEN_LIMIT = 10_000  # ids kept in memory; a real receiver stores them (docs/receivers.md §4)


class Hook(BaseHTTPRequestHandler):
    secrets: list[str] = []
    seen: OrderedDict[str, None] = OrderedDict()

    def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            event = verify(body, dict(self.headers), self.secrets)
        except WebhookVerificationError as exc:
            print("rejected:", exc, flush=True)
            self.send_response(400)
            self.end_headers()
            return
        delivery = self.headers.get("webhook-id") or self.headers.get("X-CauseFlow-Delivery", "")
        self.send_response(204)  # answer first, then work (here: print)
        self.end_headers()
        if delivery in self.seen:
            print("duplicate", delivery, flush=True)
            return
        self.seen[delivery] = None
        if len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        print("verified", event.event, event.id, delivery, flush=True)

    def log_message(self, *_args: object) -> None:  # quiet: one line per request is enough
        pass


def selftest(path: Path) -> int:
    """Sign every vector and verify every check of vectors.json; 0 when all agree."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    failed = []
    for v in doc["vectors"]:
        body = v["body"].encode("utf-8")
        hex_sig = causeflow_signature(v["secrets"][0], body)
        std = " ".join(
            standard_signature(s, v["webhookId"], v["timestamp"], body) for s in v["secrets"]
        )
        if (hex_sig, std) != (
            v["headers"]["X-CauseFlow-Signature"],
            v["headers"]["webhook-signature"],
        ):
            failed.append("signing: " + v["name"])
    for c in doc["checks"]:
        try:
            verify(c["body"].encode("utf-8"), c["headers"], c["secrets"], now=c["now"])
            accepted = True
        except WebhookVerificationError:
            accepted = False
        if accepted != c["valid"]:
            failed.append("check: " + c["name"])
    total = len(doc["vectors"]) + len(doc["checks"])
    for name in failed:
        print("FAILED", name)
    print(f"selftest: {total - len(failed)} of {total} vectors and checks agree")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--selftest"]:
        return selftest(Path(argv[1]) if len(argv) > 1 else VECTORS)
    port = int(argv[0]) if argv else 3000
    Hook.secrets = os.environ["CAUSEFLOW_WEBHOOK_SECRET"].split(",")
    server = HTTPServer(("127.0.0.1", port), Hook)
    print(f"listening on http://127.0.0.1:{server.server_port}/hooks", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
