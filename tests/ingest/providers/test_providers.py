"""Inbound providers: real-shaped fixtures, mapping rules, signatures, and a fuzz of bad input.

Every fixture under tests/support/fixtures/providers/<provider>/ is named in that directory's
expected.json with the alerts it must produce; one parametrized test runs them all.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from causeflow.ingest.fingerprint import (
    MAX_FINGERPRINT_LENGTH,
    clamp_fingerprint,
    labels_fingerprint,
    scope_key,
    stable_hash,
)
from causeflow.ingest.providers.base import (
    SEVERITIES,
    InvalidPayload,
    InvalidSignature,
    ParsedPayload,
    ProviderSecrets,
)
from causeflow.ingest.providers.fields import to_rfc3339
from causeflow.ingest.providers.registry import PROVIDERS, get_provider
from causeflow.ingest.providers.signatures import hmac_hex

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "support" / "fixtures" / "providers"
DOCS = ROOT.parent / "docs" / "providers.md"


def fixture_cases() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for directory in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        expected = orjson.loads((directory / "expected.json").read_bytes())
        for name, case in expected.items():
            yield directory.name, name, case


CASES = list(fixture_cases())


def load(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def load_doc(provider: str, name: str) -> dict[str, Any]:
    return orjson.loads(load(provider, name))


def parse(provider: str, doc: object, headers: dict[str, str] | None = None) -> ParsedPayload:
    return PROVIDERS[provider].parse(headers or {}, orjson.dumps(doc))


# --- the fixtures --------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "name", "case"), CASES, ids=[f"{p}/{n}" for p, n, _ in CASES])
def test_fixture_parses_to_the_expected_alerts(provider: str, name: str, case: dict) -> None:
    parsed = PROVIDERS[provider].parse(case.get("headers", {}), load(provider, name))
    got = [
        {"fingerprint": a.fingerprint, "status": a.status, "severity": a.severity, "title": a.title}
        for a in parsed.alerts
    ]
    assert got == case["alerts"]
    assert parsed.delivery_id == case["delivery_id"]
    if "sns" in case:
        assert (parsed.sns.kind if parsed.sns else None) == case["sns"]
    for alert in parsed.alerts:
        assert alert.raw and isinstance(alert.raw, dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())


def test_every_fixture_file_has_an_expectation() -> None:
    named = {(p, n) for p, n, _ in CASES}
    on_disk = {(f.parent.name, f.name) for f in FIXTURES.glob("*/*") if f.name != "expected.json"}
    assert on_disk == named
    assert {p for p, _ in named} == set(PROVIDERS)


def test_firing_and_resolve_fixtures_share_fingerprints() -> None:
    pairs = [
        ("alertmanager", "firing_multiple.json", "resolved.json"),
        ("grafana", "unified_firing.json", "unified_resolved.json"),
        ("grafana", "legacy_alerting.json", "legacy_ok.json"),
        ("datadog", "triggered.json", "recovered.json"),
        ("cloudwatch", "alarm.txt", "ok.txt"),
        ("sentry", "issue_alert.json", "issue_resolved.json"),
        ("sentry", "metric_alert_critical.json", "metric_alert_resolved.json"),
        ("pagerduty", "events_v2_trigger.json", "events_v2_resolve.json"),
        ("pagerduty", "v3_incident_triggered.json", "v3_incident_resolved.json"),
        ("newrelic", "workflow_activated.json", "workflow_closed.json"),
        ("newrelic", "legacy_open.json", "legacy_closed.json"),
        ("custom", "firing.json", "resolved.json"),
    ]
    for provider, firing, resolved in pairs:
        fired = {
            a.fingerprint for a in PROVIDERS[provider].parse({}, load(provider, firing)).alerts
        }
        closed = PROVIDERS[provider].parse({}, load(provider, resolved)).alerts
        assert closed and all(a.status == "resolved" for a in closed)
        assert {a.fingerprint for a in closed} <= fired, (provider, firing)


# --- registry ------------------------------------------------------------------------------------


def test_registry_names_every_documented_provider() -> None:
    assert set(PROVIDERS) == {
        "datadog",
        "grafana",
        "cloudwatch",
        "sentry",
        "pagerduty",
        "newrelic",
        "alertmanager",
        "custom",
    }
    for name, provider in PROVIDERS.items():
        assert provider.name == name
        assert get_provider(name) is provider
        assert "x-webhook-signature" in provider.signature_headers
    assert get_provider("DataDog") is PROVIDERS["datadog"]
    assert get_provider("splunk") is None
    assert get_provider("../custom") is None
    assert {n for n, p in PROVIDERS.items() if p.signs} == {
        "grafana",
        "sentry",
        "pagerduty",
        "cloudwatch",
        "custom",
    }


# --- mapping rules -------------------------------------------------------------------------------


def test_alertmanager_values_are_case_insensitive_and_fall_back_to_group_status() -> None:
    doc = load_doc("alertmanager", "firing_multiple.json")
    alert = doc["alerts"][0]
    alert["labels"]["severity"] = "CRITICAL"
    del alert["status"]
    doc["status"] = "Resolved"
    (first, *_) = parse("alertmanager", doc).alerts
    assert (first.status, first.severity) == ("resolved", "critical")


def test_alertmanager_without_fingerprint_uses_the_label_set() -> None:
    doc = load_doc("alertmanager", "resolved.json")
    alert = doc["alerts"][0]
    del alert["fingerprint"]
    one = parse("alertmanager", doc).alerts[0].fingerprint
    alert["labels"] = dict(reversed(list(alert["labels"].items())))
    assert parse("alertmanager", doc).alerts[0].fingerprint == one
    alert["labels"]["instance"] = "other"
    assert parse("alertmanager", doc).alerts[0].fingerprint != one


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"alerts": {}}, "alerts must be an array"),
        ({"alerts": [1]}, r"alerts\[0\] must be an object"),
        ({"alerts": [{"status": "firing"}]}, r"alerts\[0\]\.labels must be an object"),
        ({"status": "pending", "alerts": [{"labels": {}}]}, "firing or resolved"),
    ],
)
def test_alertmanager_shape_errors_say_where(change: dict, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        parse("alertmanager", {**load_doc("alertmanager", "resolved.json"), **change})


@pytest.mark.parametrize(("state", "count"), [("paused", 0), ("pending", 0), ("NO_DATA", 1)])
def test_grafana_legacy_states(state: str, count: int) -> None:
    doc = {**load_doc("grafana", "legacy_alerting.json"), "state": state}
    alerts = parse("grafana", doc).alerts
    assert len(alerts) == count
    assert all(a.status == "firing" for a in alerts)


def test_grafana_rejects_unknown_shapes() -> None:
    with pytest.raises(InvalidPayload, match="legacy"):
        parse("grafana", {"receiver": "x"})
    with pytest.raises(InvalidPayload, match="state must be"):
        parse("grafana", {**load_doc("grafana", "legacy_alerting.json"), "state": "exploded"})


def test_datadog_without_cycle_key_uses_alert_id_and_normalized_scope() -> None:
    doc = {**load_doc("datadog", "triggered.json"), "alert_cycle_key": "$ALERT_CYCLE_KEY"}
    doc["alert_scope"] = "service:checkout, env:prod"
    assert parse("datadog", doc).alerts[0].fingerprint == "1234567:env:prod,service:checkout"
    doc["alert_scope"] = ""
    assert parse("datadog", doc).alerts[0].fingerprint == "1234567"


@pytest.mark.parametrize(
    ("fields", "status", "severity"),
    [
        ({"alert_transition": "RECOVERED", "alert_type": "error"}, "resolved", "critical"),
        (
            {"alert_transition": "$ALERT_TRANSITION", "alert_type": "success"},
            "resolved",
            "critical",
        ),
        (
            {"alert_transition": "Warn", "alert_type": "warning", "alert_priority": ""},
            "firing",
            "medium",
        ),
        ({"alert_transition": "Re-Triggered", "alert_priority": "p3"}, "firing", "medium"),
        (
            {"alert_transition": "No Data", "alert_type": "error", "alert_priority": "N/A"},
            "firing",
            "high",
        ),
    ],
)
def test_datadog_status_and_severity(fields: dict, status: str, severity: str) -> None:
    alert = parse("datadog", {**load_doc("datadog", "triggered.json"), **fields}).alerts[0]
    assert (alert.status, alert.severity) == (status, severity)


def test_datadog_needs_the_published_template() -> None:
    default_payload = {
        "body": "Sending to the webhook",
        "last_updated": "1406662672000",
        "event_type": "metric_alert_monitor",
        "title": "[Triggered] [Memory Alert]",
        "date": "1406662672000",
        "org": {"id": "123", "name": "Acme"},
        "id": "1234567",
    }
    with pytest.raises(InvalidPayload, match="template"):
        parse("datadog", default_payload)


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("[Triggered on {host:ip-012345}] Host is Down", "Host is Down"),
        ("[P1] [Re-Triggered] Disk full", "Disk full"),
        ("[Warn on {env:prod}] Latency", "Latency"),
        ("[maintenance] Planned work", "[maintenance] Planned work"),
    ],
)
def test_datadog_titles_lose_the_notification_prefix(raw: str, title: str) -> None:
    doc = {**load_doc("datadog", "triggered.json"), "alert_title": raw}
    assert parse("datadog", doc).alerts[0].title == title


def test_cloudwatch_without_arn_keys_by_account_region_and_name() -> None:
    alarm = load_doc("cloudwatch", "bare_alarm.json")
    del alarm["AlarmArn"]
    alert = parse("cloudwatch", alarm).alerts[0]
    assert alert.fingerprint == "123456789012:US East (N. Virginia):checkout-5xx-rate"
    assert alert.url is None


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"Type": "Notification", "Message": "not json"}, "MessageId"),
        ({"hello": "world"}, "SNS envelope"),
        ({"AlarmName": "x", "NewStateValue": "BROKEN"}, "NewStateValue"),
        ({"AlarmName": "x"}, "NewStateValue is required"),
    ],
)
def test_cloudwatch_errors(doc: dict, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        parse("cloudwatch", doc)


def test_cloudwatch_message_must_be_alarm_json() -> None:
    envelope = orjson.loads(load("cloudwatch", "alarm.txt"))
    envelope["Message"] = "Hello from a topic that is not CloudWatch"
    with pytest.raises(InvalidPayload, match="SNS Message is not valid JSON"):
        parse("cloudwatch", envelope)


def test_cloudwatch_alarm_state_is_case_insensitive() -> None:
    alarm = {**load_doc("cloudwatch", "bare_alarm.json"), "NewStateValue": "ok"}
    assert parse("cloudwatch", alarm).alerts[0].status == "resolved"


def test_sentry_resources_without_alerts_are_accepted_empty() -> None:
    install = {"action": "created", "data": {"installation": {"uuid": "x"}}, "installation": {}}
    parsed = parse("sentry", install, {"sentry-hook-resource": "installation", "request-id": "r"})
    assert (parsed.alerts, parsed.delivery_id) == ([], "r")
    issue = load_doc("sentry", "issue_resolved.json")
    for action in ("assigned", "archived", "ignored"):
        assert (
            parse("sentry", {**issue, "action": action}, {"sentry-hook-resource": "issue"}).alerts
            == []
        )
    created = parse("sentry", {**issue, "action": "created"}, {"sentry-hook-resource": "issue"})
    assert [a.status for a in created.alerts] == ["firing"]


def test_sentry_resource_is_inferred_without_the_header() -> None:
    parsed = parse("sentry", load_doc("sentry", "metric_alert_critical.json"))
    assert parsed.alerts[0].fingerprint == "metric_alert:4"
    with pytest.raises(InvalidPayload, match="metric alert action"):
        parse("sentry", {**load_doc("sentry", "metric_alert_critical.json"), "action": "meh"})
    with pytest.raises(InvalidPayload, match="data has none"):
        parse("sentry", {"action": "x", "data": {}})


def test_pagerduty_trigger_without_dedup_key_gets_a_stable_one() -> None:
    doc = load_doc("pagerduty", "events_v2_trigger.json")
    del doc["dedup_key"]
    first = parse("pagerduty", doc).alerts[0].fingerprint
    assert first == parse("pagerduty", doc).alerts[0].fingerprint
    assert first.startswith("auto:")
    with pytest.raises(InvalidPayload, match="dedup_key is required"):
        parse("pagerduty", {"routing_key": "k", "event_action": "resolve"})


def test_pagerduty_routing_key_is_not_kept() -> None:
    alert = parse("pagerduty", load_doc("pagerduty", "events_v2_trigger.json")).alerts[0]
    assert alert.raw["routing_key"] == "[redacted]"
    assert "samplekeyhere" not in orjson.dumps(alert.raw).decode()


def test_pagerduty_v3_events_without_state_change_carry_no_alert() -> None:
    doc = load_doc("pagerduty", "v3_incident_triggered.json")
    doc["event"]["event_type"] = "incident.annotated"
    assert parse("pagerduty", doc).alerts == []
    doc["event"]["event_type"] = "incident.unacknowledged"
    assert parse("pagerduty", doc).alerts[0].status == "firing"


def test_pagerduty_v3_severity_falls_back_to_urgency() -> None:
    doc = load_doc("pagerduty", "v3_incident_triggered.json")
    doc["event"]["data"]["priority"] = None
    doc["event"]["data"]["urgency"] = "low"
    assert parse("pagerduty", doc).alerts[0].severity == "low"


def test_pagerduty_legacy_webhooks_are_refused_with_a_reason() -> None:
    with pytest.raises(InvalidPayload, match="V3"):
        parse("pagerduty", {"messages": [{"event": "incident.trigger"}]})


def test_newrelic_acknowledged_and_test_notifications() -> None:
    workflow = {**load_doc("newrelic", "workflow_activated.json"), "state": "acknowledged"}
    assert parse("newrelic", workflow).alerts[0].status == "acknowledged"
    legacy = {**load_doc("newrelic", "legacy_open.json"), "current_state": "test"}
    assert parse("newrelic", legacy).alerts == []
    with pytest.raises(InvalidPayload, match="state must be"):
        parse("newrelic", {**workflow, "state": "EXPLODED"})


def test_custom_fingerprint_is_a_hash_of_title_and_service() -> None:
    fired = parse("custom", load_doc("custom", "firing.json")).alerts[0]
    assert fired.fingerprint == stable_hash("Nightly export failed", "exporter")
    spaced = parse("custom", {"title": "  Nightly   export failed ", "service": "exporter"}).alerts[
        0
    ]
    assert spaced.fingerprint == fired.fingerprint
    other = parse("custom", {"title": "Nightly export failed", "service": "importer"}).alerts[0]
    assert other.fingerprint != fired.fingerprint


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"status": "firing"}, "title is required"),
        ({"title": "x", "status": "exploded"}, "status must be"),
        ({"title": "x", "severity": "apocalyptic"}, "severity must be one of"),
        ({"title": "x", "labels": ["a"]}, "labels must be an object"),
        ({"alerts": []}, "non-empty array"),
        ({"alerts": [{"title": "ok"}, "nope"]}, r"alerts\[1\] must be an object"),
    ],
)
def test_custom_is_strict(doc: dict, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        parse("custom", doc)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body is empty"),
        (b"   ", "body is empty"),
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object, not an array"),
        (b'"text"', "must be a JSON object, not a string"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_unreadable_bodies_say_why(provider: str, body: bytes, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        PROVIDERS[provider].parse({}, body)


# --- published templates match what the parsers read ---------------------------------------------


def _doc_block(marker: str) -> str:
    text = DOCS.read_text()
    start = text.index(marker)
    block = re.search(r"```json\n(.*?)```", text[start:], re.S)
    assert block is not None
    return block.group(1)


def test_datadog_template_in_the_docs_matches_the_fixture() -> None:
    template = orjson.loads(_doc_block("<!-- datadog-template -->"))
    assert set(template) == set(load_doc("datadog", "triggered.json"))
    assert all(str(v).startswith("$") for k, v in template.items() if k != "org")
    # An unfilled template (Datadog's "test" button on an unknown monitor) is a clear 400.
    with pytest.raises(InvalidPayload, match="alert_cycle_key or alert_id"):
        parse("datadog", template)


def test_newrelic_template_in_the_docs_matches_the_fixture() -> None:
    keys = re.findall(r'^\s*"(\w+)":', _doc_block("<!-- newrelic-template -->"), re.M)
    assert set(keys) == set(load_doc("newrelic", "workflow_activated.json"))


# --- signatures ----------------------------------------------------------------------------------

BODY = b'{"test": 2432232314}'
SECRETS = ProviderSecrets(
    webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    sentry="sentry-client-secret",
    pagerduty="pd-secret",
    grafana="grafana-secret",
)


def test_hmac_matches_the_reference_test_vectors() -> None:
    assert hmac_hex("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", BODY) == (
        "80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c"
    )
    assert hmac_hex("your-signing-secret", BODY) == (
        "d4951e0b55cb89d60c7c169ef0f393a34390089ebe2ca1fd3ed1f0403eada815"
    )


GOOD = "80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c"


def assert_verified(provider: str, headers: dict[str, str], outcome: object) -> None:
    """`verify` of the body with these headers answers `outcome` (True, False, None), or
    refuses it (`"raise"`)."""
    if outcome == "raise":
        with pytest.raises(InvalidSignature):
            PROVIDERS[provider].verify(headers, BODY, SECRETS)
    else:
        assert PROVIDERS[provider].verify(headers, BODY, SECRETS) is outcome


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        (None, False),
        (f"sha256={GOOD}", True),
        (GOOD, True),
        (f"SHA256={GOOD.upper()}", True),
        (f"sha256={'0' * 64}", "raise"),
        ("sha256=", "raise"),
        ("garbage", "raise"),
    ],
)
def test_generic_signature_for_every_provider(
    provider: str, value: str | None, outcome: object
) -> None:
    headers = {} if value is None else {"x-webhook-signature": value}
    assert_verified(provider, headers, outcome)


def test_a_signature_without_a_configured_secret_counts_as_unsigned() -> None:
    headers = {"x-webhook-signature": "sha256=00", "sentry-hook-signature": "00"}
    assert PROVIDERS["sentry"].verify(headers, BODY, ProviderSecrets()) is False


def _provider_cases() -> list[tuple[str, dict[str, str], object]]:
    sentry = hmac_hex("sentry-client-secret", BODY)
    pd = hmac_hex("pd-secret", BODY)
    grafana_body = hmac_hex("grafana-secret", BODY)
    grafana_ts = hmac_hex("grafana-secret", b"1764232973:" + BODY)
    return [
        ("sentry", {"sentry-hook-signature": sentry}, True),
        ("sentry", {"sentry-hook-signature": "0" * 64}, "raise"),
        ("pagerduty", {"x-pagerduty-signature": f"v1={pd}"}, True),
        ("pagerduty", {"x-pagerduty-signature": f"v1={'1' * 64},v1={pd}"}, True),
        ("pagerduty", {"x-pagerduty-signature": f"v1={'1' * 64}, v1={'2' * 64}"}, "raise"),
        ("pagerduty", {"x-pagerduty-signature": f"v2={pd}"}, "raise"),
        ("grafana", {"x-grafana-alerting-signature": grafana_body}, True),
        (
            "grafana",
            {
                "x-grafana-alerting-signature": grafana_ts,
                "x-grafana-alerting-signature-timestamp": "1764232973",
            },
            True,
        ),
        (
            "grafana",
            {
                "x-grafana-alerting-signature": grafana_ts,
                "x-grafana-alerting-timestamp": "1764232973",
            },
            True,
        ),
        (
            "grafana",
            {
                "x-grafana-alerting-signature": grafana_ts,
                "x-grafana-alerting-signature-timestamp": "1764232974",
            },
            "raise",
        ),
        ("grafana", {"x-grafana-alerting-signature": grafana_ts}, "raise"),
        # One good signature does not excuse a bad one.
        (
            "sentry",
            {"x-webhook-signature": f"sha256={GOOD}", "sentry-hook-signature": "0" * 64},
            "raise",
        ),
        ("sentry", {"x-webhook-signature": "0" * 64, "sentry-hook-signature": sentry}, "raise"),
        # Another provider's header means nothing here.
        ("datadog", {"sentry-hook-signature": "0" * 64}, False),
    ]


@pytest.mark.parametrize(("provider", "headers", "outcome"), _provider_cases())
def test_provider_signatures(provider: str, headers: dict[str, str], outcome: object) -> None:
    assert_verified(provider, headers, outcome)


def test_signatures_cover_the_exact_body() -> None:
    headers = {"sentry-hook-signature": hmac_hex("sentry-client-secret", BODY)}
    with pytest.raises(InvalidSignature):
        PROVIDERS["sentry"].verify(headers, BODY + b" ", SECRETS)


# --- pure helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-10-12T09:51:03.157076+02:00", "2021-10-12T07:51:03.157Z"),
        ("2015-06-03T17:43:27.123+0000", "2015-06-03T17:43:27.123Z"),
        ("2018-08-03T09:52:26.739266876+02:00", "2018-08-03T07:52:26.739Z"),
        ("2020-04-09T15:16:27Z", "2020-04-09T15:16:27.000Z"),
        ("2020-04-09T15:16:27", "2020-04-09T15:16:27.000Z"),
        ("0001-01-01T00:00:00Z", None),
        (1406662672000, "2014-07-29T19:37:52.000Z"),
        ("1406662672000", "2014-07-29T19:37:52.000Z"),
        (1566248777.677, "2019-08-19T21:06:17.677Z"),
        (10**30, None),
        ("yesterday", None),
        (True, None),
        (None, None),
        ({"a": 1}, None),
    ],
)
def test_to_rfc3339(value: object, expected: str | None) -> None:
    assert to_rfc3339(value) == expected


def test_fingerprint_helpers() -> None:
    assert stable_hash("a,b", "c") != stable_hash("a", "b,c")
    assert len(stable_hash("x")) == 32
    assert labels_fingerprint({"a": "1", "b": "2"}) == labels_fingerprint({"b": "2", "a": "1"})
    assert scope_key(" service:a ,env:b,,env:b") == "env:b,service:a"
    assert clamp_fingerprint("  abc ") == "abc"
    long = clamp_fingerprint("x" * 1000)
    assert long.startswith("sha256:") and len(long) <= MAX_FINGERPRINT_LENGTH
    assert long == clamp_fingerprint("x" * 1000)


# --- fuzz: no bytes make a parser raise anything but InvalidPayload ------------------------------

WRONG_VALUES: list[object] = [None, 0, -1.5, True, "", "x" * 300, [], [None], {}, {"a": [1]}]


def _paths(value: object, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _replace(doc: object, path: tuple, new: object) -> object:
    if not path:
        return new
    doc = copy.deepcopy(doc)
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return doc


def _delete(doc: object, path: tuple) -> object:
    doc = copy.deepcopy(doc)
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return doc


def _mutations(provider: str, name: str) -> Iterator[bytes]:
    raw = load(provider, name)
    rng = random.Random(f"{provider}/{name}")
    for cut in sorted({0, 1, len(raw) // 3, len(raw) // 2, len(raw) - 1}):
        yield raw[:cut]
    for _ in range(20):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield bytes(data)
    doc = orjson.loads(raw)
    for path in _paths(doc):
        for new in WRONG_VALUES:
            yield orjson.dumps(_replace(doc, path, new))
        if path and isinstance(path[-1], str):  # and without the key at all
            yield orjson.dumps(_delete(doc, path))
    if isinstance(doc.get("Message"), str):  # the alarm JSON inside an SNS envelope
        try:
            inner = orjson.loads(doc["Message"])
        except orjson.JSONDecodeError:
            inner = None
        for path in _paths(inner):
            for new in WRONG_VALUES:
                message = orjson.dumps(_replace(inner, path, new)).decode()
                yield orjson.dumps({**doc, "Message": message})


def _check(result: ParsedPayload) -> None:
    assert isinstance(result, ParsedPayload)
    for alert in result.alerts:
        assert alert.status in ("firing", "resolved", "acknowledged")
        assert alert.severity in SEVERITIES
        assert isinstance(alert.fingerprint, str) and alert.fingerprint
        assert len(alert.fingerprint) <= MAX_FINGERPRINT_LENGTH
        assert isinstance(alert.title, str) and alert.title
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())
        for text in (
            alert.description,
            alert.service,
            alert.environment,
            alert.url,
            alert.occurred_at,
        ):
            assert text is None or isinstance(text, str)
    assert result.delivery_id is None or isinstance(result.delivery_id, str)


@pytest.mark.parametrize(
    ("provider", "name"), [(p, n) for p, n, _ in CASES], ids=[f"{p}/{n}" for p, n, _ in CASES]
)
def test_fuzzed_fixtures_only_ever_give_parsed_or_invalid_payload(provider: str, name: str) -> None:
    # Every provider gets every mutation of every fixture, so a parser also meets other
    # providers' shapes with wrong types in them.
    tried = 0
    for body in _mutations(provider, name):
        for parser in PROVIDERS.values():
            tried += 1
            try:
                result = parser.parse({}, body)
            except InvalidPayload as exc:
                assert str(exc)
            else:
                _check(result)
    assert tried > 100


def test_random_bytes_and_wrong_json_types_for_every_provider() -> None:
    rng = random.Random(20261127)
    bodies = [rng.randbytes(rng.randint(0, 64)) for _ in range(200)]
    bodies += [orjson.dumps(v) for v in WRONG_VALUES]
    bodies += [b"{" * 5000, b"[" * 2000 + b"]" * 2000, b'{"a":' * 600 + b"1" + b"}" * 600]
    bodies += [b'{"alerts": 1e999}', b'{"n": 123456789012345678901234567890}', b"\x00{}"]
    for body in bodies:
        for provider in PROVIDERS.values():
            try:
                result = provider.parse({}, body)
            except InvalidPayload:
                continue
            _check(result)


def test_random_signature_headers_never_raise_anything_else() -> None:
    rng = random.Random(7)
    names = sorted({h for p in PROVIDERS.values() for h in p.signature_headers})
    names += ["x-grafana-alerting-signature-timestamp"]
    for _ in range(300):
        headers = {
            rng.choice(names): "".join(
                chr(rng.randrange(32, 0x250)) for _ in range(rng.randint(0, 80))
            )
            for _ in range(rng.randint(1, 3))
        }
        for provider in PROVIDERS.values():
            try:
                assert provider.verify(headers, BODY, SECRETS) in (True, False)
            except InvalidSignature:
                pass
