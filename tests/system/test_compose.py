"""deploy/compose.yaml, read as Compose reads it (YAML merge keys, `${VAR:?}` and `${VAR:-x}`
interpolation): the services the deployment guide promises, each running a command the image's
entrypoint passes to `causeflow`, with a configuration the service accepts on PostgreSQL (its
keys from the environment), and every secret it asks for written by the guide's `.env` step.

No Compose implementation nor a PostgreSQL image is available here; the image itself is run by
tests/system/test_container.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from causeflow.auth.keys import check_key_sources
from causeflow.cli import app
from causeflow.settings import Settings
from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.unit

COMPOSE = REPO_ROOT / "deploy/compose.yaml"
VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")
ENV_FILE = {
    "POSTGRES_PASSWORD": "pw",
    "CAUSEFLOW_SECRET_KEY": "ab" * 32,
    "CAUSEFLOW_JWT_SECRET": "jwt-secret",
}


def interpolate(text: str, env: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in env:
            return env[name]
        assert kind == "-", f"${{{name}}} has no default and is not set"
        return rest

    return VARIABLE.sub(one, text)


def compose(env: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env))


def test_compose_runs_an_api_two_workers_and_postgresql() -> None:
    services = compose(ENV_FILE)["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker-1", "worker-2"}
    commands = {name: s.get("command") for name, s in services.items() if name != "postgres"}
    assert commands == {
        "migrate": ["migrate"],
        "api": ["serve"],
        "worker-1": ["worker"],
        "worker-2": ["worker"],
    }
    known = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    assert {c[0] for c in commands.values()} <= known
    assert services["api"]["ports"] == ["8000:8000"]  # the image's CAUSEFLOW_PORT
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-1", "worker-2"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }


def test_every_causeflow_service_is_configured_for_postgresql() -> None:
    services = compose(ENV_FILE)["services"]
    for name in ("migrate", "api", "worker-1", "worker-2"):
        env = services[name]["environment"]
        settings = Settings(**{k.removeprefix("CAUSEFLOW_").lower(): v for k, v in env.items()})
        assert settings.is_postgres, name
        assert "@postgres:5432/" in settings.database_url
        check_key_sources(settings)  # the keys come from the environment, not the database
        assert settings.secret_key == ENV_FILE["CAUSEFLOW_SECRET_KEY"]


def test_the_secrets_it_asks_for_are_those_the_guide_writes() -> None:
    required = {m.group(1) for m in VARIABLE.finditer(COMPOSE.read_text()) if m.group(2) == "?"}
    assert required == set(ENV_FILE)
    guide = (REPO_ROOT / "docs/deploying.md").read_text()
    env_step = guide[guide.index("cat > deploy/.env") :].split("EOF", 2)[1]
    assert {line.split("=", 1)[0] for line in env_step.split() if "=" in line} == required


def test_a_missing_secret_is_an_error_not_an_empty_value() -> None:
    try:
        compose({k: v for k, v in ENV_FILE.items() if k != "CAUSEFLOW_SECRET_KEY"})
    except AssertionError as exc:
        assert "CAUSEFLOW_SECRET_KEY" in str(exc)
    else:
        raise AssertionError("an unset CAUSEFLOW_SECRET_KEY was accepted")
