"""Each broker type's settings (`options` of a subscription) and URL schemes. Pure: pydantic
only, no broker client, so the API validates every type whether its extra is installed or not.
Each type's module re-exports its model as `Options`. Field names are the API's (camel case).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_NAME = r"^[^\s\x00-\x1f\x7f]+$"  # no whitespace or control characters
_SUBJECT = r"^[^\s\x00-\x1f\x7f*>]+$"  # a NATS publish subject: no wildcards either


def _not_the_brokers(value: str) -> str:
    """`$...` names the broker's own topics and subjects (MQTT `$SYS`, `$share`; NATS `$JS.API`,
    `$SYS`): a publish there would be a command to the broker, not a message."""
    if value.startswith("$"):
        raise ValueError("names starting with $ belong to the broker")
    return value


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisOptions(_Options):
    stream: str = Field(min_length=1, max_length=512, pattern=_NAME, description="the stream key")
    maxLen: int | None = Field(
        default=None, ge=1, le=10**12, description="XADD MAXLEN ~ (approximate trim)"
    )


class NatsOptions(_Options):
    subject: str = Field(min_length=1, max_length=512, pattern=_SUBJECT)
    stream: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[^\s.*>\x00-\x1f\x7f]+$",
        description="the JetStream stream expected to store the subject (checked by the server)",
    )
    _subject = field_validator("subject")(_not_the_brokers)


class RabbitmqOptions(_Options):
    exchange: str = Field(max_length=255, pattern=r"^[A-Za-z0-9_.:-]*$")
    routingKey: str = Field(max_length=255)

    @field_validator("routingKey")
    @classmethod
    def _short_string(cls, value: str) -> str:
        if len(value.encode()) > 255:  # an AMQP short string: bytes, not characters
            raise ValueError("at most 255 bytes (UTF-8)")
        return value


class MqttOptions(_Options):
    topic: str = Field(min_length=1, max_length=1024, pattern=r"^[^#+\x00]+$")
    qos: Literal[1, 2] = 1
    _topic = field_validator("topic")(_not_the_brokers)


@dataclass(frozen=True, slots=True)
class Spec:
    """What the API needs of a type without importing its module."""

    schemes: frozenset[str]
    default_port: int  # of the plain scheme; the TLS scheme's is in TLS_PORTS
    options: type[BaseModel]
    extra: str  # the distribution extra that installs its client


SPECS: dict[str, Spec] = {
    "redis": Spec(frozenset({"redis", "rediss"}), 6379, RedisOptions, "redis"),
    "nats": Spec(frozenset({"nats", "tls"}), 4222, NatsOptions, "nats"),
    "rabbitmq": Spec(frozenset({"amqp", "amqps"}), 5672, RabbitmqOptions, "rabbitmq"),
    "mqtt": Spec(frozenset({"mqtt", "mqtts"}), 1883, MqttOptions, "mqtt"),
}
TLS_SCHEMES = frozenset({"rediss", "tls", "amqps", "mqtts"})
TLS_PORTS = {"amqps": 5671, "mqtts": 8883}  # the others use the same port with TLS


def port_of(spec: Spec, scheme: str, port: int | None) -> int:
    """The port a URL of this type connects to (its own, or the scheme's default)."""
    return port if port is not None else TLS_PORTS.get(scheme, spec.default_port)
