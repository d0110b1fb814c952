"""NATS JetStream destination: each delivery is one JetStream publish to the subject.

The delivery headers travel as NATS message headers under their lower-case names; the body is
the envelope. Success is the JetStream PubAck (the message is stored in a stream); a subject no
stream captures is a refusal, as is a `stream` option naming another stream than the one that
stores the subject. `nats` (nats-py) is imported here only (the `nats` extra).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from causeflow.webhook.destinations.base import BrokerError, Target
from causeflow.webhook.destinations.options import SPECS, port_of
from causeflow.webhook.destinations.options import NatsOptions as Options

__all__ = ["DEFAULT_PORT", "SCHEMES", "NatsPublisher", "Options", "open_publisher"]

SCHEMES = SPECS["nats"].schemes
DEFAULT_PORT = SPECS["nats"].default_port


class NatsPublisher:
    def __init__(self, nc: Client, js: JetStreamContext, options: Options) -> None:
        self._nc = nc
        self._js = js
        self._options = options
        self.last_ack: tuple[str, int] | None = None

    async def publish(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self._nc.is_closed:
            raise BrokerError("nats connection lost")
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            ack = await self._js.publish(
                self._options.subject, body, headers=lowered, stream=self._options.stream
            )
        except NoStreamResponseError as exc:
            raise BrokerError("no JetStream stream stores this subject", refused=True) from exc
        except APIError as exc:  # e.g. the expected stream does not match, stream full
            raise BrokerError(f"JetStream refused: {exc}", refused=True) from exc
        except (NatsError, OSError, TimeoutError) as exc:
            raise BrokerError(f"nats unreachable: {type(exc).__name__} {exc}") from exc
        self.last_ack = (ack.stream, ack.seq)

    async def close(self) -> None:
        if not self._nc.is_closed:
            await self._nc.close()


async def _quiet(_exc: Exception) -> None:
    """nats-py logs connection errors itself unless given a callback; the attempt records them."""


def _connect_args(target: Target, timeout: float) -> dict[str, Any]:
    url = target.url
    port = port_of(SPECS["nats"], url.scheme, url.port)
    args: dict[str, Any] = {
        "servers": [f"nats://{_host(target.address)}:{port}"],
        "connect_timeout": timeout,
        # the delivery engine retries on its schedule and re-opens after a failure
        "allow_reconnect": False,
        # one more try at once, then NoServersError (0 would mean: try forever)
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0,
        "error_cb": _quiet,
        "name": "causeflow-delivery",
    }
    if url.user and url.password is not None:
        args["user"], args["password"] = url.user, url.password
    elif url.user:
        args["token"] = url.user
    if url.scheme == "tls":
        args["tls"] = ssl.create_default_context()
        args["tls_hostname"] = url.host  # connect to the vetted address, verify the name
    return args


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _abandon(nc: Client) -> None:
    """Close the socket of a connect that failed or was cancelled (nats-py leaves it open when
    the attempt's deadline cancels it while it waits for the server's INFO or PONG)."""
    transport = nc._transport
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()


async def open_publisher(target: Target, *, timeout: float) -> NatsPublisher:
    options = Options.model_validate(dict(target.options))
    nc = Client()
    try:
        await nc.connect(**_connect_args(target, timeout))
    except (NatsError, OSError, TimeoutError) as exc:
        _abandon(nc)
        refused = "authorization" in str(exc).lower()
        raise BrokerError(f"nats unreachable: {type(exc).__name__} {exc}", refused=refused) from exc
    except BaseException:
        _abandon(nc)
        raise
    return NatsPublisher(nc, nc.jetstream(timeout=timeout), options)
