"""AWS CloudWatch alarms, delivered through an SNS topic's HTTPS subscription.

The body is the SNS envelope (text/plain JSON) whose `Message` is the alarm JSON; a bare alarm
document is accepted too, for tools and tests. Alarms are keyed by `AlarmArn` (else account,
region and name) and resolve on `NewStateValue` OK; INSUFFICIENT_DATA is ignored. The SNS RSA
signature needs a certificate download, so it is left to the caller through `ParsedPayload.sns`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from causeflow.ingest.fingerprint import clamp_fingerprint
from causeflow.ingest.providers.base import (
    AlertStatus,
    InvalidPayload,
    NormalizedAlert,
    ParsedPayload,
    ProviderSecrets,
)
from causeflow.ingest.providers.fields import (
    header,
    load_object,
    opt_list,
    opt_obj,
    opt_str,
    req_str,
    title_text,
    to_rfc3339,
)
from causeflow.ingest.providers.signatures import GENERIC_HEADER, any_verified, check_generic
from causeflow.ingest.sns import action_for, parse_envelope

# `NewStateValue`; None means "no alert" (INSUFFICIENT_DATA says nothing about the service).
STATE_MAP: dict[str, AlertStatus | None] = {
    "alarm": "firing",
    "ok": "resolved",
    "insufficient_data": None,
}
# CloudWatch alarms carry no severity; an alarm reaching SNS is taken as actionable.
DEFAULT_SEVERITY = "high"
SERVICE_DIMENSIONS = ("ServiceName", "Service", "service")
ENVIRONMENT_DIMENSIONS = ("Environment", "environment", "env")


def _console_url(alarm_arn: str | None, alarm_name: str) -> str | None:
    """The alarm's console page, when its ARN names the region (`arn:aws:cloudwatch:REGION:...`)."""
    parts = (alarm_arn or "").split(":")
    if len(parts) < 6 or parts[2] != "cloudwatch" or not parts[3]:
        return None
    domain = "console.amazonaws.cn" if parts[1] == "aws-cn" else "console.aws.amazon.com"
    region = quote(parts[3], safe="")
    return f"https://{domain}/cloudwatch/home?region={region}#alarmsV2:alarm/{quote(alarm_name)}"


def parse_alarm(alarm: dict[str, Any]) -> list[NormalizedAlert]:
    """One CloudWatch alarm state-change document; empty for INSUFFICIENT_DATA."""
    name = req_str(alarm, "AlarmName", "")
    raw_state = req_str(alarm, "NewStateValue", "")
    if raw_state.lower() not in STATE_MAP:
        raise InvalidPayload(f"NewStateValue must be ALARM, OK or INSUFFICIENT_DATA: {raw_state!r}")
    status = STATE_MAP[raw_state.lower()]
    if status is None:
        return []
    arn = opt_str(alarm, "AlarmArn")
    account = opt_str(alarm, "AWSAccountId") or ""
    region = opt_str(alarm, "Region") or ""
    trigger = opt_obj(alarm, "Trigger") or {}
    labels: dict[str, str] = {}
    for dimension in opt_list(trigger, "Dimensions"):
        if isinstance(dimension, dict):
            key, value = opt_str(dimension, "name"), opt_str(dimension, "value")
            if key and value:
                labels[key] = value
    for key, value in (
        ("account_id", account),
        ("region", region),
        ("namespace", opt_str(trigger, "Namespace")),
        ("metric_name", opt_str(trigger, "MetricName")),
        ("old_state", opt_str(alarm, "OldStateValue")),
    ):
        if value:
            labels.setdefault(key, value)
    description = "\n\n".join(
        text
        for text in (opt_str(alarm, "AlarmDescription"), opt_str(alarm, "NewStateReason"))
        if text
    )
    return [
        NormalizedAlert(
            fingerprint=clamp_fingerprint(arn or f"{account}:{region}:{name}"),
            status=status,
            title=title_text(name, "CloudWatch alarm"),
            description=description or None,
            severity=DEFAULT_SEVERITY,
            service=next((labels[d] for d in SERVICE_DIMENSIONS if labels.get(d)), None),
            environment=next((labels[d] for d in ENVIRONMENT_DIMENSIONS if labels.get(d)), None),
            labels=labels,
            url=_console_url(arn, name),
            raw=alarm,
            occurred_at=to_rfc3339(alarm.get("StateChangeTime")),
        )
    ]


class CloudWatchProvider:
    """CloudWatch alarms through SNS (RSA-signed) or as bare alarm JSON."""

    name = "cloudwatch"
    signs = True
    signature_headers: tuple[str, ...] = (GENERIC_HEADER,)

    # SNS signatures need the signing certificate, so `verify` checks the generic header only:
    # the caller runs `verify_sns` (or `confirm_subscription`) on `ParsedPayload.sns` and counts
    # the request as signed after it.
    def verify(self, headers: Mapping[str, str], body: bytes, secrets: ProviderSecrets) -> bool:
        return any_verified(check_generic(headers, body, secrets.webhook_secret))

    def parse(self, headers: Mapping[str, str], body: bytes) -> ParsedPayload:
        doc = load_object(body)
        if "Type" in doc:
            envelope = parse_envelope(doc)
            action = action_for(envelope)
            if envelope.type != "Notification":
                return ParsedPayload(alerts=[], delivery_id=envelope.message_id, sns=action)
            alarm = load_object(envelope.message, "SNS Message")
            return ParsedPayload(
                alerts=parse_alarm(alarm), delivery_id=envelope.message_id, sns=action
            )
        if "AlarmName" in doc:
            return ParsedPayload(
                alerts=parse_alarm(doc), delivery_id=header(headers, "x-webhook-id")
            )
        raise InvalidPayload("expected an SNS envelope (Type) or a CloudWatch alarm (AlarmName)")
