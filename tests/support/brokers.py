"""Brokers for the destination tests: the machine's shared ones (Redis 6379, NATS JetStream 4222)
and private broker processes a test may stop and start again on the same port.

`Destination` is one place a subscription publishes to, with a unique stream or subject, and
reads back what arrived there (`messages`): the body and the headers of each message, as a
consumer of that broker sees them. `DESTINATIONS` maps a type to its factory; the end-to-end
tests are parametrized over the types the registry knows and skip those without a factory here
or without a module yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ports import free_port, port_open, wait_port_closed

REDIS_PORT = 6379
NATS_PORT = 4222


@dataclass(frozen=True)
class Message:
    body: bytes
    headers: dict[str, str]


@dataclass
class Destination:
    """Where a subscription publishes (`url`, `options`) and how to read it back."""

    type: str
    url: str
    options: dict[str, Any]
    read: Callable[[], Awaitable[list[Message]]]
    close: Callable[[], Awaitable[None]]
    seen: list[Message] = field(default_factory=list)

    async def messages(self, count: int, timeout: float = 15.0) -> list[Message]:
        """At least `count` messages (everything read so far), or AssertionError at timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):  # the broker may be down for now
                self.seen = await self.read()
            if len(self.seen) >= count:
                return self.seen
            assert time.monotonic() < deadline, f"{len(self.seen)} of {count} arrived"
            await asyncio.sleep(0.05)


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


# --- Redis Streams ------------------------------------------------------------------------


@asynccontextmanager
async def redis_destination(port: int = REDIS_PORT, **options: Any) -> AsyncIterator[Destination]:
    """A fresh stream key on the Redis at `port`; read with XRANGE (deleted at the end)."""
    import redis.asyncio as aioredis

    stream = unique("cf-test-")
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    entries: dict[bytes, Message] = {}

    async def read() -> list[Message]:
        # entries are remembered across reads: a restarted Redis without persistence forgets
        for entry_id, fields in await client.xrange(stream):
            body = fields.pop(b"body")
            headers = {k.decode(): v.decode() for k, v in fields.items()}
            entries.setdefault(entry_id, Message(body, headers))
        return list(entries.values())

    async def close() -> None:
        with contextlib.suppress(Exception):
            await client.delete(stream)
        await client.aclose()

    dest = Destination(
        "redis", f"redis://127.0.0.1:{port}/0", {"stream": stream, **options}, read, close
    )
    try:
        yield dest
    finally:
        await close()


# --- NATS JetStream -----------------------------------------------------------------------


async def _quiet(_exc: Exception) -> None:
    """A stopped broker is expected here; nats-py would log every refused connection."""


@asynccontextmanager
async def nats_destination(port: int = NATS_PORT, **options: Any) -> AsyncIterator[Destination]:
    """A fresh JetStream stream capturing a fresh subject; read message by sequence."""
    import nats
    from nats.js.api import StorageType, StreamConfig

    stream, subject = unique("CFTEST"), unique("cf.test.")

    async def connect() -> Any:
        return await nats.connect(
            f"nats://127.0.0.1:{port}",
            allow_reconnect=False,
            max_reconnect_attempts=1,  # 0 would retry forever
            reconnect_time_wait=0,
            connect_timeout=2,
            error_cb=_quiet,
        )

    nc = await connect()
    await nc.jetstream().add_stream(
        StreamConfig(name=stream, subjects=[subject], storage=StorageType.FILE)
    )
    await nc.close()

    async def read() -> list[Message]:
        conn = await connect()
        try:
            js = conn.jetstream()
            count = (await js.stream_info(stream)).state.messages
            out = []
            for seq in range(1, count + 1):
                msg = await js.get_msg(stream, seq)
                out.append(Message(msg.data or b"", dict(msg.headers or {})))
            return out
        finally:
            await conn.close()

    async def close() -> None:
        with contextlib.suppress(Exception):
            conn = await connect()
            await conn.jetstream().delete_stream(stream)
            await conn.close()

    dest = Destination(
        "nats",
        f"nats://127.0.0.1:{port}",
        {"subject": subject, "stream": stream, **options},
        read,
        close,
    )
    try:
        yield dest
    finally:
        await close()


# --- RabbitMQ (the machine's, 5672 guest/guest) and MQTT (Mosquitto, 1883) -----------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


@asynccontextmanager
async def rabbitmq_destination(port: int = 5672, **options: Any) -> AsyncIterator[Destination]:
    """A fresh direct exchange with an exclusive queue bound to a fresh routing key; the AMQP
    message headers are the delivery headers."""
    import aio_pika

    exchange_name, key = unique("cf-test-"), unique("cf.test.")
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        exchange_name, aio_pika.ExchangeType.DIRECT, auto_delete=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=key)
    seen: list[Message] = []

    async def read() -> list[Message]:
        while (msg := await queue.get(no_ack=True, fail=False)) is not None:
            headers = {k.lower(): _text(v) for k, v in (msg.headers or {}).items()}
            seen.append(Message(msg.body, headers))
        return list(seen)

    async def close() -> None:
        with contextlib.suppress(Exception):
            await exchange.delete()
        await connection.close()

    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    dest = Destination(
        "rabbitmq", url, {"exchange": exchange_name, "routingKey": key, **options}, read, close
    )
    try:
        yield dest
    finally:
        await close()


@asynccontextmanager
async def mqtt_destination(port: int = 1883, **options: Any) -> AsyncIterator[Destination]:
    """A fresh topic subscribed at QoS 1 (MQTT 5); the user properties are the headers."""
    import aiomqtt

    topic = f"cf/test/{secrets.token_hex(6)}"
    seen: list[Message] = []
    client = aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier=unique("cf-test-")
    )
    await client.__aenter__()
    await client.subscribe(topic, qos=1)

    async def collect() -> None:
        async for msg in client.messages:
            props = getattr(msg.properties, "UserProperty", None) or []
            headers = {str(k).lower(): _text(v) for k, v in props}
            seen.append(Message(bytes(msg.payload), headers))  # type: ignore[arg-type]

    task = asyncio.create_task(collect())

    async def read() -> list[Message]:
        return list(seen)

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)

    dest = Destination(
        "mqtt", f"mqtt://127.0.0.1:{port}", {"topic": topic, "qos": 1, **options}, read, close
    )
    try:
        yield dest
    finally:
        await close()


DestinationFactory = Callable[..., Any]
DESTINATIONS: dict[str, DestinationFactory] = {
    "redis": redis_destination,
    "nats": nats_destination,
    "rabbitmq": rabbitmq_destination,
    "mqtt": mqtt_destination,
}


# --- private broker processes -------------------------------------------------------------


class BrokerProcess:
    """A broker of our own on a free loopback port, which a test may stop and start again."""

    def __init__(self, kind: str, workdir: Path, port: int | None = None) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.kind == "redis":
            return [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        if self.kind == "nats":
            return [
                shutil.which("nats-server") or "nats-server",
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.workdir / "jetstream"),
            ]
        raise ValueError(f"no broker process for {self.kind!r}")

    def start(self, timeout: float = 15.0) -> None:
        log = (self.workdir / f"{self.kind}.log").open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not port_open(self.port, timeout=0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not start on {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        wait_port_closed(self.port)


@contextlib.contextmanager
def broker_process(kind: str, workdir: Path) -> Any:
    """A started private broker, stopped at the end whatever happened."""
    workdir.mkdir(parents=True, exist_ok=True)
    broker = BrokerProcess(kind, workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


PROCESS_KINDS = frozenset({"redis", "nats"})
