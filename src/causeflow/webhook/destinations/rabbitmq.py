"""RabbitMQ destination: the webhook envelope published over AMQP 0-9-1 (aio-pika).

A publisher is one connection to the vetted address with one channel in publisher-confirm mode.
`publish` returns once the broker has confirmed the message (`basic.ack`); the message is
persistent, `application/json`, its AMQP `message_id` is the delivery's `webhook-id` and its
AMQP headers are every header of the attempt. It is published `mandatory`, so a message that no
queue takes comes back (`basic.return`) and is a refusal, as is a `basic.nack` or a channel the
broker closed (an exchange that does not exist): `BrokerError(refused=True)`, after which the
publisher stays usable (a closed channel is reopened on the next publish). A login the broker
refuses (or a missing exchange) makes `open_publisher` raise a refusal too.

Reconnect policy: none. A lost connection, a failed connect or a confirmation that does not come
within `timeout` is `BrokerError(refused=False)`; the publisher then closes itself and every
later `publish` raises the same at once, so its owner opens a new one (which resolves and vets
the address again). The URL's query is ignored: its TLS file options would read files of this
host, so amqps always verifies the broker's certificate against the system's trust store (the
standard `SSL_CERT_FILE` applies) for the URL's host name, while connecting to the vetted IP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import unquote

import aio_pika
import yarl
from aio_pika.abc import AbstractChannel, AbstractExchange
from aio_pika.exceptions import (
    AuthenticationError,
    ChannelClosed,
    DeliveryError,
    ProbableAuthenticationError,
    PublishError,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from causeflow.webhook.destinations.base import BrokerError, Publisher, Target
from causeflow.webhook.destinations.templating import expand, message_id

SCHEMES: frozenset[str] = frozenset({"amqp", "amqps"})
DEFAULT_PORT = 5672
TLS_PORT = 5671
_SHORTSTR = 255  # AMQP short strings (exchange names, routing keys) are at most 255 bytes


class Options(BaseModel):
    """`exchange` ("" is the default exchange, which routes to the queue named by the key) and
    `routingKey` (may contain `{type}`, replaced by the event type)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    exchange: str = Field(default="", max_length=_SHORTSTR, pattern=r"^[A-Za-z0-9_.:\-]*$")
    routing_key: str = Field(max_length=_SHORTSTR)

    @field_validator("routing_key")
    @classmethod
    def _short(cls, value: str) -> str:
        if len(value.encode()) > _SHORTSTR:
            raise ValueError(f"at most {_SHORTSTR} bytes")
        return value


def port_of(url: yarl.URL) -> int:
    """The URL's port, or the scheme's default."""
    return url.explicit_port or (TLS_PORT if url.scheme == "amqps" else DEFAULT_PORT)


def vhost_of(url: yarl.URL) -> str:
    """The virtual host the URL names (its path without the leading slash, percent-decoded;
    `/` when the path is empty or `/`), as the AMQP URI specification reads it."""
    raw = url.raw_path
    if raw in ("", "/"):
        return "/"
    return unquote(raw[1:])


class _PinnedConnection(aio_pika.Connection):
    """A connection whose TLS handshake names `server_hostname` (SNI and the certificate check)
    although it connects to an IP address."""

    def __init__(self, url: yarl.URL, *, server_hostname: str | None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        if server_hostname:
            self.kwargs["server_hostname"] = server_hostname


async def open_publisher(target: Target, *, timeout: float) -> Publisher:
    """Connect and open the confirming channel (and check the exchange exists)."""
    options = Options.model_validate(dict(target.options))
    connection = _connect(target)
    try:
        await connection.connect(timeout=timeout)
        channel = await _channel(connection, timeout)
        exchange = await _exchange(channel, options.exchange, timeout)
    except ChannelClosed as exc:
        await _quietly_close(connection)
        raise BrokerError(f"the broker refused the channel: {exc}", refused=True) from exc
    except (ProbableAuthenticationError, AuthenticationError) as exc:
        await _quietly_close(connection)
        raise BrokerError(f"the broker refused the login: {exc}", refused=True) from exc
    except Exception as exc:
        await _quietly_close(connection)
        raise BrokerError(f"could not connect to the broker: {_describe(exc)}") from exc
    except BaseException:  # the attempt's deadline cancelled the connect half-way
        _close_aside(connection, timeout)
        raise
    return RabbitPublisher(connection, channel, exchange, options, timeout)


_CLOSING: set[asyncio.Task[None]] = set()


def _close_aside(connection: aio_pika.Connection, timeout: float) -> None:
    """Close a connection whose opening was cancelled, without delaying the cancellation: a
    broker that stopped answering would otherwise keep it open for the life of the process."""
    task = asyncio.get_running_loop().create_task(_quietly_close(connection, timeout))
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


def _connect(target: Target) -> _PinnedConnection:
    url = target.url
    tls = url.scheme == "amqps"
    broker_url = aio_pika.connection.make_url(
        host=target.address,
        port=port_of(url),
        login=url.user if url.user is not None else "guest",
        password=url.password if url.password is not None else "guest",
        virtualhost=vhost_of(url),
        ssl=tls,
    )
    return _PinnedConnection(
        broker_url,
        server_hostname=url.host if tls else None,
        ssl_context=ssl.create_default_context() if tls else None,
    )


async def _channel(connection: aio_pika.Connection, timeout: float) -> AbstractChannel:
    channel = connection.channel(publisher_confirms=True, on_return_raises=True)
    await asyncio.wait_for(channel.initialize(), timeout)
    return channel


async def _exchange(channel: AbstractChannel, name: str, timeout: float) -> AbstractExchange:
    if not name:
        return channel.default_exchange
    return await asyncio.wait_for(channel.get_exchange(name, ensure=True), timeout)


async def _quietly_close(connection: aio_pika.Connection, timeout: float = 5.0) -> None:
    """Close, waiting at most `timeout` for the broker's answer (the socket goes either way)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), timeout)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class RabbitPublisher:
    """One connection, one confirming channel; see the module's reconnect policy."""

    def __init__(
        self,
        connection: aio_pika.Connection,
        channel: AbstractChannel,
        exchange: AbstractExchange,
        options: Options,
        timeout: float,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self._exchange = exchange
        self._options = options
        self._timeout = timeout
        self._dead: str | None = None
        self._in_flight: dict[str, tuple[asyncio.Lock, int]] = {}

    async def publish(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self._dead is not None:
            raise BrokerError(self._dead)
        try:
            routing_key = expand(self._options.routing_key, headers)
        except ValueError as exc:
            raise BrokerError(str(exc), refused=True) from exc
        if len(routing_key.encode()) > _SHORTSTR:
            raise BrokerError("the routing key is longer than 255 bytes", refused=True)
        message = aio_pika.Message(
            body,
            headers=dict(headers),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id(headers),
        )
        # The client matches a returned message to its publish by message id, so two
        # publishes of one id are never in flight together.
        async with self._one_per_id(str(message.message_id)):
            await self._confirmed(message, routing_key)

    async def _confirmed(self, message: aio_pika.Message, routing_key: str) -> None:
        try:
            exchange = await self._usable_exchange()
            await exchange.publish(message, routing_key, mandatory=True, timeout=self._timeout)
        except PublishError as exc:
            raise BrokerError(f"unroutable: no queue took {routing_key!r}", refused=True) from exc
        except DeliveryError as exc:
            raise BrokerError("the broker refused the message (nack)", refused=True) from exc
        except ChannelClosed as exc:
            if not self._connected():
                await self._die(f"connection lost: {exc}")
                raise BrokerError(self._dead or "connection lost") from exc
            raise BrokerError(f"the broker closed the channel: {exc}", refused=True) from exc
        except Exception as exc:
            await self._die(f"connection lost: {_describe(exc)}")
            raise BrokerError(self._dead or "connection lost") from exc

    async def _usable_exchange(self) -> AbstractExchange:
        """The exchange on an open channel: a channel the broker closed (a refusal) is
        reopened; a lost connection is not."""
        if not self._connected():
            raise ConnectionError("the connection is closed")
        if self._channel.is_closed:
            self._channel = await _channel(self._connection, self._timeout)
            self._exchange = await _exchange(self._channel, self._options.exchange, self._timeout)
        return self._exchange

    def _connected(self) -> bool:
        return not self._connection.is_closed and self._connection.connected.is_set()

    @contextlib.asynccontextmanager
    async def _one_per_id(self, key: str) -> AsyncIterator[None]:
        lock, users = self._in_flight.get(key, (asyncio.Lock(), 0))
        self._in_flight[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._in_flight[key]
            if users == 1:
                del self._in_flight[key]
            else:
                self._in_flight[key] = (lock, users - 1)

    async def _die(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
        await _quietly_close(self._connection)

    async def close(self) -> None:
        if self._dead is None:
            self._dead = "the publisher is closed"
        await _quietly_close(self._connection)
