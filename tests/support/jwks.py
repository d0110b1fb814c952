"""A JWKS server on loopback, in a thread of its own (as an identity provider is another
process): it counts fetches and can hold a request (slow), answer 503 (failing), or stop."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

# How long a held request waits for `release()` at most, so nothing hangs for good. Tests
# check that other requests are answered while a fetch is held: this is their deadline.
HOLD_LIMIT_SECONDS = 30.0


def new_signing_key(kid: str) -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    """An ES256 key pair: the private key, and its public JWK with `kid`."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return key, jwk


class JwksServer:
    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.mode = "ok"  # ok | hold | error
        self.hits = 0
        self.holding = False
        self._changed = threading.Condition()
        self._release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"

    def start(self) -> JwksServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                with server._changed:
                    server.hits += 1
                    mode = server.mode
                    if mode == "hold":
                        server.holding = True
                    server._changed.notify_all()
                if mode == "hold":
                    server._release.wait(HOLD_LIMIT_SECONDS)
                    with server._changed:
                        server.holding = False
                        server.mode = "ok"  # held once; later fetches are answered at once
                        server._changed.notify_all()
                if mode == "error":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"keys": list(server.keys)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def hold(self) -> None:
        self._release.clear()
        self.mode = "hold"

    def release(self) -> None:
        self.mode = "ok"
        self._release.set()

    def wait_hits(self, count: int, timeout: float = 5.0) -> bool:
        """Block (call it in a thread) until `count` fetches have arrived."""
        with self._changed:
            return self._changed.wait_for(lambda: self.hits >= count, timeout)

    def wait_holding(self, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.holding, timeout)

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
