"""MQTT destination: the webhook envelope published over MQTT 5 (aiomqtt on paho-mqtt).

A publisher is one MQTT 5 connection to the vetted address. `publish` sends the body with QoS 1
or 2 (QoS 0 cannot be confirmed, so the options refuse it), content type `application/json` and
one user property per header, and returns only once the broker has taken the message: PUBACK
for QoS 1, PUBCOMP for QoS 2. A reason code of 0x80 or more (not authorized, quota exceeded,
topic name invalid...) in the PUBACK, or in the PUBREC of QoS 2, is a refusal:
`BrokerError(refused=True)`, and the publisher stays usable. "No matching subscribers" (0x10) is
a success code: MQTT routes nothing the publisher could be told about, a subscriber with a
persistent session that is offline still gets the message, and brokers need not report it.
A negative CONNACK (bad credentials, not authorized) makes `open_publisher` raise a refusal.

aiomqtt 2.5.1 waits for the PUBACK/PUBCOMP but drops its reason code, and paho-mqtt ignores the
PUBREC's, so both would report a refused message as published; it also keeps waiting after the
connection is lost. `_ConfirmingClient` therefore publishes through paho itself and resolves
each message id with the broker's reason code, or with the loss of the connection.

Reconnect policy: none, as for RabbitMQ. A lost connection, a failed connect or an
acknowledgement that does not come within `timeout` is `BrokerError(refused=False)`; the publisher
closes itself and every later `publish` raises at once, so its owner opens a new one (resolving
and vetting the address again). mqtts verifies the broker's certificate against the system's
trust store for the URL's host name while connecting to the vetted IP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from causeflow.webhook.destinations.base import BrokerError, Publisher, Target
from causeflow.webhook.destinations.templating import expand

SCHEMES: frozenset[str] = frozenset({"mqtt", "mqtts"})
DEFAULT_PORT = 1883
TLS_PORT = 8883
_MAX_TOPIC_BYTES = 65535
_FAILURE = 0x80  # MQTT 5: reason codes from 0x80 up are failures


def check_topic(topic: str) -> str:
    """A topic a message may be published to: no wildcard, no NUL, not a `$` (broker) topic."""
    if not topic:
        raise ValueError("the topic is empty")
    if "+" in topic or "#" in topic:
        raise ValueError("a topic to publish to may not contain the wildcards + or #")
    if "\x00" in topic:
        raise ValueError("the topic may not contain NUL")
    if topic.startswith("$"):
        raise ValueError("topics starting with $ belong to the broker")
    if len(topic.encode()) > _MAX_TOPIC_BYTES:
        raise ValueError(f"the topic is longer than {_MAX_TOPIC_BYTES} bytes")
    return topic


class Options(BaseModel):
    """`topic` (may contain `{type}`, replaced by the event type), `qos` (1 or 2) and
    `retain` (false unless set)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    topic: str = Field(max_length=1024)
    qos: Literal[1, 2] = 1
    retain: bool = False

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return check_topic(value)

    @field_validator("qos", mode="before")
    @classmethod
    def _qos(cls, value: Any) -> Any:
        if value == 0 and not isinstance(value, bool):
            raise ValueError("QoS 0 cannot be confirmed: use 1 or 2")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("qos is 1 or 2")
        return value


class _NamedHostContext(ssl.SSLContext):
    """A client TLS context that checks the certificate for `server_name` whatever address the
    socket connects to (paho passes the address it dials)."""

    server_name: str = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def _tls_context(host: str) -> ssl.SSLContext:
    context = _NamedHostContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_default_certs()
    context.server_name = host
    return context


class _ConfirmingClient(aiomqtt.Client):
    """aiomqtt's client whose publishes resolve with the broker's reason code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outcomes: dict[int, asyncio.Future[int]] = {}
        self._early: dict[int, int] = {}
        self._refused_at_pubrec: dict[int, int] = {}
        self._watch_pubrec()

    def _watch_pubrec(self) -> None:
        """Note a PUBREC's failure code (paho reads only its message id, then goes on)."""
        client = self._client
        handle = client._handle_pubrec

        def handle_pubrec() -> paho.MQTTErrorCode:
            with contextlib.suppress(Exception):
                packet = bytes(client._in_packet["packet"])
                (mid,) = struct.unpack("!H", packet[:2])
                if len(packet) > 2 and packet[2] >= _FAILURE:
                    self._refused_at_pubrec[mid] = packet[2]
            return handle()

        client._handle_pubrec = handle_pubrec  # type: ignore[method-assign]

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        code = self._refused_at_pubrec.pop(mid, None) or int(reason_code.value)
        future = self._outcomes.pop(mid, None)
        if future is None:
            self._early[mid] = code
        elif not future.done():
            future.set_result(code)

    def lost(self) -> bool:
        return self._disconnected.done()

    def abandon(self) -> None:
        """Close the socket of a connect that failed or timed out (aiomqtt leaves it open
        while it waits for a CONNACK that never came)."""
        with contextlib.suppress(Exception):
            self._client._sock_close()

    def forget_loss(self) -> None:
        """Read the loss's exception, so that asyncio does not report it as never retrieved."""
        if self._disconnected.done() and not self._disconnected.cancelled():
            self._disconnected.exception()

    async def confirmed_publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: Properties
    ) -> int:
        """Publish and return the broker's reason code; ConnectionError when the connection
        is or gets lost before it answers."""
        if self.lost():
            raise ConnectionError("the connection is closed")
        info = self._client.publish(topic, payload, qos, retain, properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"could not publish: {paho.error_string(info.rc)}")
        if info.mid in self._early:
            return self._early.pop(info.mid)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._outcomes[info.mid] = future
        try:
            await asyncio.wait((future, self._disconnected), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._outcomes.pop(info.mid, None)
        if not future.done():
            raise ConnectionError("the connection was lost before the broker answered")
        return future.result()


async def open_publisher(target: Target, *, timeout: float) -> Publisher:
    """Connect (MQTT 5, a fresh client id, clean start)."""
    options = Options.model_validate(dict(target.options))
    url = target.url
    tls = url.scheme == "mqtts"
    client = _ConfirmingClient(
        target.address,
        url.explicit_port or (TLS_PORT if tls else DEFAULT_PORT),
        username=url.user,
        password=url.password,
        identifier=f"causeflow-{uuid.uuid4().hex}",
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=timeout,
        tls_context=_tls_context(url.host or "") if tls else None,
    )
    client._client.connect_timeout = timeout
    try:
        await asyncio.wait_for(client.__aenter__(), timeout)
    except MqttConnectError as exc:
        client.abandon()
        raise BrokerError(f"the broker refused the connection: {exc}", refused=True) from exc
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        client.abandon()
        raise BrokerError(f"could not connect to the broker: {_describe(exc)}") from exc
    except BaseException:  # the attempt's deadline cancelled the connect: no socket stays open
        client.abandon()
        raise
    return MqttPublisher(client, options, timeout)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _reason(code: int) -> str:
    for packet_type in (PacketTypes.PUBACK, PacketTypes.PUBCOMP):
        with contextlib.suppress(Exception):
            return f"{ReasonCode(packet_type, identifier=code).getName()} ({code:#04x})"
    return f"reason code {code:#04x}"


def _properties(headers: Mapping[str, str]) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "application/json"
    if headers:
        properties.UserProperty = list(headers.items())
    return properties


class MqttPublisher:
    """One MQTT 5 connection; see the module's reconnect policy."""

    def __init__(self, client: _ConfirmingClient, options: Options, timeout: float) -> None:
        self._client = client
        self._options = options
        self._timeout = timeout
        self._dead: str | None = None

    async def publish(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self._dead is not None:
            raise BrokerError(self._dead)
        try:
            topic = check_topic(expand(self._options.topic, headers))
        except ValueError as exc:
            raise BrokerError(str(exc), refused=True) from exc
        try:
            code = await asyncio.wait_for(
                self._client.confirmed_publish(
                    topic, body, self._options.qos, self._options.retain, _properties(headers)
                ),
                self._timeout,
            )
        except (ConnectionError, OSError, TimeoutError, aiomqtt.MqttError) as exc:
            await self._die(f"connection lost: {_describe(exc)}")
            raise BrokerError(self._dead or "connection lost") from exc
        if code >= _FAILURE:
            raise BrokerError(f"the broker refused the message: {_reason(code)}", refused=True)

    async def _die(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
        await self._disconnect()

    async def _disconnect(self) -> None:
        self._client.forget_loss()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.__aexit__(None, None, None), self._timeout)

    async def close(self) -> None:
        if self._dead is None:
            self._dead = "the publisher is closed"
        await self._disconnect()
