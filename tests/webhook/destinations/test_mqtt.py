"""The MQTT destination against Mosquitto: the machine's broker (127.0.0.1:1883) and private
ones the tests start, refuse with an ACL, kill and restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
import yarl
from pydantic import ValidationError

from causeflow.webhook.destinations import mqtt
from causeflow.webhook.destinations.base import BrokerError, Target
from tests.support.brokers_amqp_mqtt import Mosquitto, mosquitto_available, tls_files
from tests.support.ports import free_port
from tests.support.tcp_proxy import SilentServer
from tests.webhook.destinations.signed import assert_received, signed_message, target, unique

SHARED_PORT = 1883
TIMEOUT = 5.0

needs_mosquitto = pytest.mark.skipif(not mosquitto_available(), reason="no mosquitto binary")


def mqtt_target(topic: str, port: int = SHARED_PORT, **options: object) -> Target:
    dumped = mqtt.Options.model_validate({"topic": topic, **options}).model_dump()
    return target(f"mqtt://broker.invalid:{port}", dumped)


@contextlib.asynccontextmanager
async def subscriber(topic: str, port: int = SHARED_PORT) -> AsyncIterator[list[aiomqtt.Message]]:
    """Messages on `topic` (QoS 2, so each arrives once), in arrival order."""
    inbox: list[aiomqtt.Message] = []
    async with aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier=unique("sub")
    ) as client:
        await client.subscribe(topic, qos=2)

        async def collect() -> None:
            async for message in client.messages:
                inbox.append(message)

        task = asyncio.create_task(collect())
        try:
            yield inbox
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def take(inbox: list[aiomqtt.Message], count: int) -> list[aiomqtt.Message]:
    """Exactly `count` messages: waits for them, then checks that no extra one follows."""
    deadline = time.monotonic() + 10
    while len(inbox) < count:
        assert time.monotonic() < deadline, f"received {len(inbox)} of {count}"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # give a duplicate the chance to show
    assert len(inbox) == count
    return list(inbox)


def headers_of(message: aiomqtt.Message) -> dict[str, str]:
    assert message.properties is not None
    return dict(message.properties.UserProperty)


# --- options -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_options_need_a_plain_topic_and_a_confirmable_qos() -> None:
    assert mqtt.Options.model_validate({"topic": "cf/{type}"}).model_dump() == {
        "topic": "cf/{type}",
        "qos": 1,
        "retain": False,
    }
    assert mqtt.Options.model_validate({"topic": "t", "qos": 2, "retain": True}).qos == 2
    bad = [
        {},
        {"qos": 1},
        {"topic": "cf/+/x"},
        {"topic": "cf/#"},
        {"topic": "#"},
        {"topic": ""},
        {"topic": "$SYS/broker"},
        {"topic": "a\x00b"},
        {"topic": "t", "qos": 0},
        {"topic": "t", "qos": 3},
        {"topic": "t", "qos": True},
        {"topic": "t", "qos": "1"},
        {"topic": "t", "qos": 1.0},
        {"topic": "t", "retain": "maybe"},
        {"topic": "t", "exchange": "x"},  # unknown field
    ]
    for options in bad:
        with pytest.raises(ValidationError):
            mqtt.Options.model_validate(options)
    assert mqtt.SCHEMES == {"mqtt", "mqtts"}
    assert (mqtt.DEFAULT_PORT, mqtt.TLS_PORT) == (1883, 8883)


# --- publishing --------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("qos", [1, 2])
async def test_each_message_arrives_once_signed_with_every_header(qos: int) -> None:
    base = unique("t")
    async with subscriber(f"{base}/incident.created") as inbox:
        publisher = await mqtt.open_publisher(
            mqtt_target(f"{base}/{{type}}", qos=qos), timeout=TIMEOUT
        )
        sent = [signed_message("incident.created") for _ in range(3)]
        try:
            for body, headers in sent:
                await publisher.publish(body, headers)
        finally:
            await publisher.close()
        received = await take(inbox, 3)
    for message, (body, headers) in zip(received, sent, strict=True):
        assert message.topic.value == f"{base}/incident.created"
        assert message.retain is False
        assert message.properties is not None
        assert message.properties.ContentType == "application/json"
        assert isinstance(message.payload, bytes)
        assert_received(message.payload, headers_of(message), body, headers)


@pytest.mark.integration
async def test_sequential_messages_arrive_in_order() -> None:
    topic = unique("t")
    sent = [signed_message() for _ in range(40)]
    async with subscriber(topic) as inbox:
        publisher = await mqtt.open_publisher(mqtt_target(topic), timeout=TIMEOUT)
        try:
            for body, headers in sent:
                await publisher.publish(body, headers)
        finally:
            await publisher.close()
        received = await take(inbox, len(sent))
    assert [m.payload for m in received] == [b for b, _ in sent]


@pytest.mark.integration
async def test_a_message_without_an_event_type_for_the_template_is_refused() -> None:
    publisher = await mqtt.open_publisher(mqtt_target(unique("t") + "/{type}"), timeout=TIMEOUT)
    try:
        body, headers = signed_message()
        del headers["X-CauseFlow-Event"]
        with pytest.raises(BrokerError) as refused:
            await publisher.publish(body, headers)
        assert refused.value.refused is True
        await publisher.publish(*signed_message())  # still usable
    finally:
        await publisher.close()


@pytest.mark.integration
async def test_a_broker_that_is_down_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(BrokerError) as down:
        await mqtt.open_publisher(mqtt_target("t", port=free_port()), timeout=TIMEOUT)
    assert down.value.refused is False
    assert time.monotonic() - started < TIMEOUT


@pytest.mark.process
@needs_mosquitto
@pytest.mark.parametrize("qos", [1, 2])
async def test_a_refusing_broker_is_a_refusal_not_a_success(tmp_path: Path, qos: int) -> None:
    """Mosquitto answers an ACL denial with 0x87 (PUBACK for QoS 1, PUBREC for QoS 2)."""
    acl = "topic readwrite open/#\n"
    with Mosquitto(tmp_path, acl=acl) as broker:
        async with subscriber("open/#", port=broker.port) as inbox:
            denied = await mqtt.open_publisher(
                mqtt_target("closed/{type}", port=broker.port, qos=qos), timeout=TIMEOUT
            )
            allowed = await mqtt.open_publisher(
                mqtt_target("open/{type}", port=broker.port, qos=qos), timeout=TIMEOUT
            )
            try:
                for _ in range(2):  # a refusal leaves the publisher usable
                    with pytest.raises(BrokerError) as refused:
                        await denied.publish(*signed_message())
                    assert refused.value.refused is True
                    assert "Not authorized" in str(refused.value)
                body, headers = signed_message()
                await allowed.publish(body, headers)
            finally:
                await denied.close()
                await allowed.close()
            [message] = await take(inbox, 1)
    assert_received(message.payload, headers_of(message), body, headers)  # type: ignore[arg-type]


@pytest.mark.process
@needs_mosquitto
async def test_a_broker_restart_is_reported_and_a_new_publisher_works_after(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path).start()
    try:
        to_broker = mqtt_target("restart/x", port=broker.port, qos=2)
        async with subscriber("restart/#", port=broker.port) as inbox:
            publisher = await mqtt.open_publisher(to_broker, timeout=TIMEOUT)
            before = signed_message()
            await publisher.publish(*before)
            [first] = await take(inbox, 1)
            broker.kill()
            with pytest.raises(BrokerError) as lost:
                await publisher.publish(*signed_message())
            assert lost.value.refused is False
        with pytest.raises(BrokerError):  # the publisher stays dead: its owner re-opens
            await publisher.publish(*signed_message())
        await publisher.close()
        with pytest.raises(BrokerError):  # nothing listens meanwhile
            await mqtt.open_publisher(to_broker, timeout=TIMEOUT)
        broker.start()
        async with subscriber("restart/#", port=broker.port) as inbox:
            again = await mqtt.open_publisher(to_broker, timeout=TIMEOUT)
            after = signed_message()
            await again.publish(*after)
            await again.close()
            [second] = await take(inbox, 1)
    finally:
        broker.kill()
    assert (first.payload, second.payload) == (before[0], after[0])


@pytest.mark.unit
def test_the_target_keeps_the_url_it_was_given() -> None:
    given = mqtt_target("t", port=1999)
    assert given.url == yarl.URL("mqtt://broker.invalid:1999") and given.address == "127.0.0.1"


@pytest.mark.process
@needs_mosquitto
async def test_mqtts_checks_the_certificate_for_the_url_host_while_dialling_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = tls_files(tmp_path, "broker.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca))
    with Mosquitto(tmp_path, tls=files) as broker:
        options = {"topic": "tls/x"}
        named = target(f"mqtts://broker.test:{broker.port}", options)
        publisher = await mqtt.open_publisher(named, timeout=TIMEOUT)
        await publisher.publish(*signed_message())
        await publisher.close()
        misnamed = target(f"mqtts://other.test:{broker.port}", options)
        with pytest.raises(BrokerError, match="(?i)certificate"):
            await mqtt.open_publisher(misnamed, timeout=TIMEOUT)
        plain = target(f"mqtt://broker.test:{broker.port}", options)
        with pytest.raises(BrokerError):
            await mqtt.open_publisher(plain, timeout=1.0)


@pytest.mark.integration
async def test_a_broker_that_never_answers_fails_within_the_timeout() -> None:
    async with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(BrokerError) as hung:
            await mqtt.open_publisher(mqtt_target("t", port=silent.port), timeout=1.0)
        assert hung.value.refused is False
        assert time.monotonic() - started < 3
        assert silent.accepted == 1


@pytest.mark.process
@needs_mosquitto
async def test_concurrent_publishes_each_get_their_own_answer(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, acl="topic readwrite open/incident.created\n") as broker:
        async with subscriber("open/#", port=broker.port) as inbox:
            publisher = await mqtt.open_publisher(
                mqtt_target("open/{type}", port=broker.port, qos=2), timeout=TIMEOUT
            )
            kinds = ["incident.created", "incident.status_changed"] * 10
            sent = [signed_message(kind) for kind in kinds]
            try:
                outcomes = await asyncio.gather(
                    *(publisher.publish(b, h) for b, h in sent), return_exceptions=True
                )
            finally:
                await publisher.close()
            received = await take(inbox, 10)
    for kind, outcome in zip(kinds, outcomes, strict=True):
        if kind == "incident.created":
            assert outcome is None
        else:
            assert isinstance(outcome, BrokerError) and outcome.refused
    assert sorted(m.payload for m in received) == sorted(  # type: ignore[type-var]
        b for (b, _), kind in zip(sent, kinds, strict=True) if kind == "incident.created"
    )


@pytest.mark.process
@needs_mosquitto
async def test_a_broker_refusing_the_login_is_a_refusal(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, anonymous=False) as broker:
        stranger = target(f"mqtt://nobody:wrong@broker.invalid:{broker.port}", {"topic": "t"})
        with pytest.raises(BrokerError) as login:
            await mqtt.open_publisher(stranger, timeout=TIMEOUT)
    assert login.value.refused is True


@pytest.mark.process
@needs_mosquitto
async def test_a_connection_lost_while_awaiting_the_acknowledgement_fails_at_once(
    tmp_path: Path,
) -> None:
    """The broker stops answering (SIGSTOP), then dies: the publish fails when the connection
    drops, not when its timeout runs out (aiomqtt alone would wait for the timeout)."""
    broker = Mosquitto(tmp_path).start()
    try:
        publisher = await mqtt.open_publisher(mqtt_target("t", port=broker.port), timeout=60)
        broker.pause()
        pending = asyncio.create_task(publisher.publish(*signed_message()))
        await asyncio.sleep(0.3)
        assert not pending.done()
        started = time.monotonic()
        broker.kill()
        with pytest.raises(BrokerError) as lost:
            await pending
        assert lost.value.refused is False
        assert time.monotonic() - started < 10
        await publisher.close()
    finally:
        broker.kill()
