"""The RabbitMQ destination against the broker of this machine (127.0.0.1:5672, guest/guest):
confirmed, persistent, signed messages; refusals; a broker that is down or goes away."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
import yarl
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from causeflow.webhook.destinations import rabbitmq
from causeflow.webhook.destinations.base import BrokerError
from tests.support.brokers_amqp_mqtt import tls_files
from tests.support.ports import free_port
from tests.support.tcp_proxy import SilentServer, TcpProxy
from tests.webhook.destinations.signed import assert_received, signed_message, target, unique

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
TIMEOUT = 5.0


@pytest.fixture
async def channel() -> AsyncIterator[AbstractChannel]:
    """The consumer's side: its own connection, whose exclusive queues go with it."""
    connection = await aio_pika.connect(BROKER)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def bound_queue(
    channel: AbstractChannel, exchange: str, binding: str, **arguments: object
) -> AbstractQueue:
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, auto_delete=True)
    queue = await channel.declare_queue(unique("q"), exclusive=True, arguments=arguments or None)
    await queue.bind(ex, binding)
    return queue


async def take(queue: AbstractQueue, count: int) -> list[AbstractIncomingMessage]:
    """Exactly `count` messages: waits for them, then checks that no extra one follows."""
    got: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + 10
    while len(got) < count:
        assert time.monotonic() < deadline, f"received {len(got)} of {count}"
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.02)
        else:
            got.append(message)
    await asyncio.sleep(0.2)  # give a duplicate the chance to show
    assert await queue.get(no_ack=True, fail=False) is None
    return got


def amqp_target(exchange: str, routing_key: str, port: int = 5672) -> rabbitmq.Target:
    options = rabbitmq.Options(exchange=exchange, routingKey=routing_key).model_dump()
    return target(f"amqp://guest:guest@broker.invalid:{port}/", options)


# --- options and URLs --------------------------------------------------------------------------


@pytest.mark.unit
def test_options_take_camel_case_or_field_names_and_refuse_the_rest() -> None:
    assert rabbitmq.Options.model_validate({"routingKey": "a.{type}"}).exchange == ""
    dumped = rabbitmq.Options(exchange="ex", routingKey="k").model_dump()
    assert rabbitmq.Options.model_validate(dumped).routing_key == "k"
    bad = [
        {},  # routingKey is required
        {"exchange": "ex"},
        {"routingKey": "k", "queue": "q"},  # unknown field
        {"routingKey": "k", "exchange": "bad name"},
        {"routingKey": "k", "exchange": "x" * 256},
        {"routingKey": "é" * 128},  # 256 bytes
        {"routingKey": 5},
    ]
    for options in bad:
        with pytest.raises(ValidationError):
            rabbitmq.Options.model_validate(options)


@pytest.mark.unit
def test_port_and_virtual_host_come_from_the_url() -> None:
    assert rabbitmq.port_of(yarl.URL("amqp://h")) == rabbitmq.DEFAULT_PORT == 5672
    assert rabbitmq.port_of(yarl.URL("amqps://h")) == rabbitmq.TLS_PORT == 5671
    assert rabbitmq.port_of(yarl.URL("amqps://h:1234")) == 1234
    assert rabbitmq.SCHEMES == {"amqp", "amqps"}
    for url, vhost in [
        ("amqp://h", "/"),
        ("amqp://h/", "/"),
        ("amqp://h/%2F", "/"),
        ("amqp://h/prod", "prod"),
        ("amqp://h/a%2Fb", "a/b"),
    ]:
        assert rabbitmq.vhost_of(yarl.URL(url)) == vhost, url


# --- publishing --------------------------------------------------------------------------------


@pytest.mark.integration
async def test_each_message_arrives_once_signed_persistent_with_every_header(
    channel: AbstractChannel,
) -> None:
    exchange = unique("ex")
    queue = await bound_queue(channel, exchange, "cf.incident.created")
    publisher = await rabbitmq.open_publisher(amqp_target(exchange, "cf.{type}"), timeout=TIMEOUT)
    try:
        sent = [signed_message("incident.created") for _ in range(3)]
        for body, headers in sent:
            await publisher.publish(body, headers)
    finally:
        await publisher.close()
    received = await take(queue, 3)
    for message, (body, headers) in zip(received, sent, strict=True):
        assert message.routing_key == "cf.incident.created"
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == headers["webhook-id"]
        amqp_headers = {k: str(v) for k, v in message.headers.items()}
        assert all(isinstance(v, str) for v in message.headers.values())
        assert_received(message.body, amqp_headers, body, headers)


@pytest.mark.integration
async def test_the_default_exchange_routes_to_the_queue_named_by_the_key(
    channel: AbstractChannel,
) -> None:
    queue = await channel.declare_queue(unique("q"), exclusive=True)
    publisher = await rabbitmq.open_publisher(amqp_target("", queue.name), timeout=TIMEOUT)
    body, headers = signed_message()
    try:
        await publisher.publish(body, headers)
    finally:
        await publisher.close()
    [message] = await take(queue, 1)
    assert_received(message.body, {k: str(v) for k, v in message.headers.items()}, body, headers)


@pytest.mark.integration
async def test_sequential_messages_arrive_in_order(channel: AbstractChannel) -> None:
    exchange = unique("ex")
    queue = await bound_queue(channel, exchange, "#")
    publisher = await rabbitmq.open_publisher(amqp_target(exchange, "ordered"), timeout=TIMEOUT)
    sent = [signed_message() for _ in range(40)]
    try:
        for body, headers in sent:
            await publisher.publish(body, headers)
    finally:
        await publisher.close()
    received = await take(queue, len(sent))
    assert [m.message_id for m in received] == [h["webhook-id"] for _, h in sent]
    assert [m.body for m in received] == [b for b, _ in sent]


@pytest.mark.integration
async def test_an_unroutable_message_is_refused_and_the_publisher_goes_on(
    channel: AbstractChannel,
) -> None:
    exchange = unique("ex")
    queue = await bound_queue(channel, exchange, "cf.incident.created")
    publisher = await rabbitmq.open_publisher(amqp_target(exchange, "cf.{type}"), timeout=TIMEOUT)
    try:
        with pytest.raises(BrokerError) as refused:
            await publisher.publish(*signed_message("incident.status_changed"))
        assert refused.value.refused is True
        assert "unroutable" in str(refused.value)
        body, headers = signed_message("incident.created")
        await publisher.publish(body, headers)
    finally:
        await publisher.close()
    [message] = await take(queue, 1)
    assert message.body == body


@pytest.mark.integration
async def test_a_nack_is_a_refusal(channel: AbstractChannel) -> None:
    """A full queue that rejects publishes makes the broker nack the message."""
    exchange = unique("ex")
    queue = await bound_queue(
        channel, exchange, "full", **{"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    publisher = await rabbitmq.open_publisher(amqp_target(exchange, "full"), timeout=TIMEOUT)
    try:
        await publisher.publish(*signed_message())
        with pytest.raises(BrokerError) as refused:
            await publisher.publish(*signed_message())
        assert refused.value.refused is True and "nack" in str(refused.value)
    finally:
        await publisher.close()
    await take(queue, 1)


@pytest.mark.integration
async def test_a_missing_exchange_or_event_type_is_a_refusal(channel: AbstractChannel) -> None:
    with pytest.raises(BrokerError) as missing:
        await rabbitmq.open_publisher(amqp_target(unique("nowhere"), "k"), timeout=TIMEOUT)
    assert missing.value.refused is True
    queue = await channel.declare_queue(unique("q"), exclusive=True)
    publisher = await rabbitmq.open_publisher(amqp_target("", "{type}"), timeout=TIMEOUT)
    try:
        body, headers = signed_message()
        del headers["X-CauseFlow-Event"]
        with pytest.raises(BrokerError) as untyped:
            await publisher.publish(body, headers)
        assert untyped.value.refused is True
    finally:
        await publisher.close()
    assert await queue.get(fail=False) is None


@pytest.mark.integration
async def test_a_broker_that_is_down_fails_fast_and_bad_credentials_fail() -> None:
    started = time.monotonic()
    with pytest.raises(BrokerError) as down:
        await rabbitmq.open_publisher(amqp_target("", "k", port=free_port()), timeout=TIMEOUT)
    assert down.value.refused is False
    assert time.monotonic() - started < TIMEOUT
    stranger = target("amqp://nobody:wrong@broker.invalid:5672/", {"routingKey": "k"})
    with pytest.raises(BrokerError) as login:
        await rabbitmq.open_publisher(stranger, timeout=TIMEOUT)
    assert login.value.refused is True and "login" in str(login.value)


@pytest.mark.integration
async def test_a_lost_connection_is_reported_and_a_new_publisher_works_after(
    channel: AbstractChannel,
) -> None:
    exchange = unique("ex")
    queue = await bound_queue(channel, exchange, "#")
    proxy = await TcpProxy(5672).start()
    through_proxy = amqp_target(exchange, "k", port=proxy.port)
    try:
        publisher = await rabbitmq.open_publisher(through_proxy, timeout=TIMEOUT)
        before = signed_message()
        await publisher.publish(*before)
        await proxy.cut()
        with pytest.raises(BrokerError) as lost:
            await publisher.publish(*signed_message())
        assert lost.value.refused is False
        with pytest.raises(BrokerError):  # the publisher stays dead: its owner re-opens
            await publisher.publish(*signed_message())
        with pytest.raises(BrokerError):  # the broker is unreachable meanwhile
            await rabbitmq.open_publisher(through_proxy, timeout=TIMEOUT)
        await publisher.close()
        await proxy.restore()
        again = await rabbitmq.open_publisher(through_proxy, timeout=TIMEOUT)
        after = signed_message()
        await again.publish(*after)
        await again.close()
    finally:
        await proxy.close()
    received = await take(queue, 2)
    assert [m.body for m in received] == [before[0], after[0]]


@pytest.mark.integration
async def test_amqps_checks_the_certificate_for_the_url_host_while_dialling_the_address(
    channel: AbstractChannel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS listener (the proxy, terminating TLS in front of the broker) with a certificate
    for broker.test: the publisher dials 127.0.0.1 and accepts it only as broker.test."""
    files = tls_files(tmp_path, "broker.test")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca))
    queue = await channel.declare_queue(unique("q"), exclusive=True)
    options = {"routingKey": queue.name}
    proxy = await TcpProxy(5672, tls=server).start()
    try:
        named = target(f"amqps://guest:guest@broker.test:{proxy.port}/", options)
        publisher = await rabbitmq.open_publisher(named, timeout=TIMEOUT)
        body, headers = signed_message()
        await publisher.publish(body, headers)
        await publisher.close()
        misnamed = target(f"amqps://guest:guest@other.test:{proxy.port}/", options)
        with pytest.raises(BrokerError, match="(?i)certificate"):
            await rabbitmq.open_publisher(misnamed, timeout=TIMEOUT)
    finally:
        await proxy.close()
    [message] = await take(queue, 1)
    assert message.body == body


@pytest.mark.integration
async def test_a_broker_that_never_answers_fails_within_the_timeout() -> None:
    async with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(BrokerError) as hung:
            await rabbitmq.open_publisher(amqp_target("", "k", port=silent.port), timeout=1.0)
        assert hung.value.refused is False
        assert time.monotonic() - started < 3
        assert silent.accepted == 1


@pytest.mark.integration
async def test_concurrent_publishes_each_get_their_own_answer(channel: AbstractChannel) -> None:
    """Twenty at once on one publisher, two of them sharing a delivery id (a re-send of a
    message still in flight): the unroutable one is refused, every other one confirmed."""
    exchange = unique("ex")
    queue = await bound_queue(channel, exchange, "cf.incident.created")
    publisher = await rabbitmq.open_publisher(amqp_target(exchange, "cf.{type}"), timeout=TIMEOUT)
    routed = [signed_message("incident.created") for _ in range(19)]
    body, headers = signed_message("incident.status_changed")
    headers["webhook-id"] = routed[0][1]["webhook-id"]
    try:
        outcomes = await asyncio.gather(
            publisher.publish(body, headers),
            *(publisher.publish(b, h) for b, h in routed),
            return_exceptions=True,
        )
    finally:
        await publisher.close()
    assert isinstance(outcomes[0], BrokerError) and outcomes[0].refused
    assert outcomes[1:] == [None] * len(routed)
    received = await take(queue, len(routed))
    assert sorted(m.body for m in received) == sorted(b for b, _ in routed)


@pytest.mark.integration
async def test_an_exchange_deleted_later_is_a_refusal_and_the_channel_comes_back(
    channel: AbstractChannel,
) -> None:
    exchange = unique("ex")
    await bound_queue(channel, exchange, "k")
    publisher = await rabbitmq.open_publisher(amqp_target(exchange, "k"), timeout=TIMEOUT)
    try:
        await publisher.publish(*signed_message())
        await channel.exchange_delete(exchange)
        with pytest.raises(BrokerError) as gone:
            await publisher.publish(*signed_message())
        assert gone.value.refused is True
        queue = await bound_queue(channel, exchange, "k")
        body, headers = signed_message()
        await publisher.publish(body, headers)  # on a new channel of the same connection
    finally:
        await publisher.close()
    [message] = await take(queue, 1)
    assert message.body == body


@pytest.mark.integration
async def test_a_connection_lost_while_awaiting_the_confirm_fails_at_once(
    channel: AbstractChannel,
) -> None:
    """The confirm is held (the proxy freezes), then the connection drops: the publish fails
    when it drops, not when its timeout runs out."""
    queue = await channel.declare_queue(unique("q"), exclusive=True)
    proxy = await TcpProxy(5672).start()
    try:
        publisher = await rabbitmq.open_publisher(
            amqp_target("", queue.name, port=proxy.port), timeout=60
        )
        proxy.freeze()
        pending = asyncio.create_task(publisher.publish(*signed_message()))
        await asyncio.sleep(0.3)
        assert not pending.done()
        started = time.monotonic()
        await proxy.cut()
        with pytest.raises(BrokerError) as lost:
            await pending
        assert lost.value.refused is False
        assert time.monotonic() - started < 10
        await publisher.close()
    finally:
        await proxy.close()
