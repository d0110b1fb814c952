"""A tiny webhook receiver that verifies every request with the SDK and prints what arrived.

Usage: CAUSEFLOW_WEBHOOK_SECRET=whsec_… python examples/receiver.py [PORT]   (default 3000)
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from causeflow_sdk import WebhookVerificationError, verify

SECRETS = os.environ["CAUSEFLOW_WEBHOOK_SECRET"].split(",")


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            event = verify(body, dict(self.headers), SECRETS)
        except WebhookVerificationError as exc:
            print("rejected:", exc, flush=True)
            self.send_response(400)
        else:
            print("verified", event.event, event.id, flush=True)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:  # quiet: one line per event is enough
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    print(f"listening on http://127.0.0.1:{port}/hooks", flush=True)
    HTTPServer(("127.0.0.1", port), Hook).serve_forever()
