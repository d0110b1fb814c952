"""Redis Streams destination: each delivery is one `XADD` to the subscription's stream.

The entry's fields are `body` (the envelope, byte for byte) and one field per delivery header
under its lower-case name (`webhook-id`, `webhook-signature`, `x-causeflow-signature`, ...).
`maxLen` trims the stream approximately (`MAXLEN ~`). Success is the XADD reply, the entry id.
`redis.asyncio` is imported here only (the `redis` extra).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from causeflow.webhook.destinations.base import BrokerError, Target
from causeflow.webhook.destinations.options import SPECS, port_of
from causeflow.webhook.destinations.options import RedisOptions as Options

__all__ = ["DEFAULT_PORT", "SCHEMES", "Options", "RedisPublisher", "open_publisher"]

SCHEMES = SPECS["redis"].schemes
DEFAULT_PORT = SPECS["redis"].default_port


def entry_fields(body: bytes, headers: Mapping[str, str]) -> dict[str, bytes | str]:
    """The stream entry of one delivery: `body` and the headers under lower-case names."""
    fields: dict[str, bytes | str] = {name.lower(): value for name, value in headers.items()}
    fields["body"] = body
    return fields


class RedisPublisher:
    def __init__(self, client: aioredis.Redis, options: Options, timeout: float) -> None:
        self._client = client
        self._options = options
        self._timeout = timeout
        self.last_id: str | None = None

    async def publish(self, body: bytes, headers: Mapping[str, str]) -> None:
        opts = self._options
        try:
            reply = await asyncio.wait_for(
                self._client.xadd(
                    opts.stream,
                    entry_fields(body, headers),  # type: ignore[arg-type]
                    maxlen=opts.maxLen,
                    approximate=True,
                ),
                self._timeout,
            )
        except AuthenticationError as exc:
            raise BrokerError(f"authentication failed: {exc}", refused=True) from exc
        except ResponseError as exc:  # WRONGTYPE, OOM, NOPERM, ...
            raise BrokerError(f"XADD refused: {exc}", refused=True) from exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BrokerError(f"redis unreachable: {exc}") from exc
        if not reply:
            raise BrokerError("XADD returned no entry id", refused=True)
        self.last_id = reply.decode() if isinstance(reply, bytes) else str(reply)

    async def close(self) -> None:
        await self._client.aclose()


class NamedSSLConnection(SSLConnection):
    """TLS to the vetted address, the certificate checked against the URL's host name."""

    def __init__(self, *, server_hostname: str, **kwargs: Any) -> None:
        self.server_hostname = server_hostname
        super().__init__(**kwargs)

    def _connection_arguments(self) -> Mapping[str, Any]:
        return {**super()._connection_arguments(), "server_hostname": self.server_hostname}


def _client_args(target: Target, timeout: float) -> dict[str, Any]:
    url = target.url
    db = url.path.strip("/")
    args: dict[str, Any] = {
        "host": target.address,
        "port": port_of(SPECS["redis"], url.scheme, url.port),
        "username": url.user or None,
        "password": url.password,
        "db": int(db) if db.isdigit() else 0,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # the delivery engine retries on its schedule; the client must not retry by itself
        "retry": Retry(NoBackoff(), 0),
    }
    if url.scheme == "rediss":
        args["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        args["ssl_check_hostname"] = True
        args["server_hostname"] = url.host
    return args


def client_for(target: Target, timeout: float) -> aioredis.Redis:
    """A client whose connections all go to the vetted address (TLS for `rediss://`)."""
    args = _client_args(target, timeout)
    tls = "server_hostname" in args
    connection_class: type[Connection] = NamedSSLConnection if tls else Connection
    pool = ConnectionPool(connection_class=connection_class, **args)
    return aioredis.Redis.from_pool(pool)


async def open_publisher(target: Target, *, timeout: float) -> RedisPublisher:
    """A client for the target, checked with a PING (so a wrong password fails here)."""
    options = Options.model_validate(dict(target.options))
    client = client_for(target, timeout)
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except BaseException as exc:
        await client.aclose()
        if isinstance(exc, AuthenticationError | ResponseError):
            raise BrokerError(f"redis refused the connection: {exc}", refused=True) from exc
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            raise BrokerError(f"redis unreachable: {exc}") from exc
        raise
    return RedisPublisher(client, options, timeout)
