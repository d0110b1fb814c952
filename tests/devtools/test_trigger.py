"""`causeflow trigger` / `listen` argument handling: samples, close names, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from causeflow.cli import main
from causeflow.devtools import ToolError
from causeflow.devtools.listen import local_msg_id
from causeflow.devtools.trigger import check_types, close_names, sample_for
from causeflow_sdk.models import CATALOG_TYPES, validate_data

pytestmark = pytest.mark.unit

INCIDENT = "inc_01M8E9Y4JZD9C5KVS531FKX582"


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """`causeflow <args>` in this process, through the same `main()` the command runs."""
    monkeypatch.setattr(sys, "argv", ["causeflow", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CAUSEFLOW_API_KEY", raising=False)
    monkeypatch.delenv("CAUSEFLOW_API_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.mark.parametrize("event_type", CATALOG_TYPES)
def test_every_catalog_type_has_a_valid_sample(event_type: str) -> None:
    data = sample_for(event_type)
    assert validate_data(event_type, data) == data


def test_incident_override() -> None:
    assert sample_for("remediation.proposed", INCIDENT)["incidentId"] == INCIDENT
    with pytest.raises(ToolError, match="carry no incidentId"):
        sample_for("user.created", INCIDENT)
    with pytest.raises(ToolError, match="must be an incident id"):
        sample_for("incident.created", "INC-42")


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("incident.craeted", "incident.created"),
        ("incident", "incident.status_changed"),
        ("approval.request", "approval.requested"),
        ("Remediation.Approved", "remediation.approved"),
    ],
)
def test_close_names(typo: str, expected: str) -> None:
    assert expected in close_names(typo)


def test_unknown_types_are_refused_with_suggestions() -> None:
    with pytest.raises(ToolError, match=r"unknown event type 'incident\.craeted'; did you mean"):
        sample_for("incident.craeted")
    with pytest.raises(ToolError, match="known types: tenant.created"):
        sample_for("zzz")
    # Operational types may be streamed but not published.
    assert check_types(["webhook.delivery_exhausted"]) == ["webhook.delivery_exhausted"]
    with pytest.raises(ToolError):
        sample_for("webhook.delivery_exhausted")


def test_local_delivery_id_is_derived_from_the_event_id() -> None:
    assert local_msg_id("evt_01M8E9XFT97MZ4AQEVP4RNSP8Q") == "msg_01M8E9XFT97MZ4AQEVP4RNSP8Q"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trigger", "incident.craeted", "--api-key", "k"], "did you mean incident.created"),
        (["trigger", "incident.created"], "no API key"),
        (["trigger", "user.created", "--incident", INCIDENT, "--api-key", "k"], "no incidentId"),
        (
            ["trigger", "incident.created", "--api-key", "k", "--api-url", "http://127.0.0.1:9"],
            "cannot reach http://127.0.0.1:9",
        ),
        (["listen"], "--forward-to"),
        (["listen", "--forward-to", "localhost:3000", "--api-key", "k"], "http(s) URL"),
        (["listen", "--forward-to", "http://localhost:3000"], "no API key"),
        (
            [
                "listen",
                "--forward-to",
                "http://l:1",
                "--events",
                "incident.create",
                "--api-key",
                "k",
            ],
            "did you mean incident.created",
        ),
    ],
)
def test_errors_are_one_line_and_nonzero(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code != 0
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "Traceback" not in out + err


def test_print_secret_is_stable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, first, _ = run_cli(monkeypatch, capsys, "listen", "--print-secret")
    assert code == 0 and first.strip().startswith("whsec_")
    assert run_cli(monkeypatch, capsys, "listen", "--print-secret")[1] == first
    stored = tmp_path / "config" / "causeflow" / "listen-secret"
    assert stored.read_text().strip() == first.strip()
