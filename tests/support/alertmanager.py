"""A real Prometheus Alertmanager process (Debian's `prometheus-alertmanager` package).

`require_alertmanager()` skips a test when the binary is missing, or fails it where
CAUSEFLOW_REQUIRE_ALERTMANAGER=1 says it must be there (CI). `Alertmanager` runs one process of
its own: a free loopback port, a temporary `--storage.path`, clustering off, and the
configuration it is given (written as JSON, which Alertmanager reads as YAML).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from .ports import free_port
from .processes import ServiceProcess

# Debian names the binary `prometheus-alertmanager`; upstream's tarball names it `alertmanager`.
BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")
REQUIRE_VAR = "CAUSEFLOW_REQUIRE_ALERTMANAGER"


def alertmanager_binary() -> str | None:
    """The Alertmanager executable: CAUSEFLOW_ALERTMANAGER, else the first one on PATH."""
    configured = os.environ.get("CAUSEFLOW_ALERTMANAGER")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_alertmanager() -> str:
    """The binary's path; skip the calling test without one, fail it when required."""
    binary = alertmanager_binary()
    if binary is not None:
        return binary
    reason = (
        "Prometheus Alertmanager not found (apt-get install -y prometheus-alertmanager, "
        "or point CAUSEFLOW_ALERTMANAGER at the binary)"
    )
    if os.environ.get(REQUIRE_VAR) == "1":
        pytest.fail(f"{reason}; {REQUIRE_VAR}=1 makes this a failure", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_VAR}=1 to make this a failure")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_utc(offset_seconds: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_seconds)


def posted_alert(
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    """One entry of `POST /api/v2/alerts` (firing unless `ends_at` is in the past)."""
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations or {},
        "generatorURL": "http://prometheus.invalid/graph?g0.expr=up",
    }
    if starts_at is not None:
        alert["startsAt"] = rfc3339(starts_at)
    if ends_at is not None:
        alert["endsAt"] = rfc3339(ends_at)
    return alert


class Alertmanager:
    """One `alertmanager` process with its own port, storage and configuration."""

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        self.process = ServiceProcess(
            role="alertmanager",
            env=dict(os.environ),
            port=free_port(),
            log_path=workdir / "alertmanager.log",
            argv=[
                binary,
                f"--config.file={self.config_path}",
                f"--storage.path={self.storage}",
                "--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            health_path="/-/ready",
        )

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def start(self, timeout: float = 20) -> None:
        self.process.start(timeout=timeout)

    def stop(self) -> None:
        try:
            if self.process.alive():
                self.process.terminate(10)
        except (TimeoutError, OSError):
            pass
        finally:
            self.process.kill9()

    def __enter__(self) -> Alertmanager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
