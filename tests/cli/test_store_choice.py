"""Which store a command uses, and that no command quietly makes a new, empty one.

Every command that opens the store takes `--data-dir` and `--database-url`. `serve`, `worker`
and `migrate` create the store when it is not there; the short commands refuse, naming the
store they would have used and how to choose one, unless `--create` says a new one is wanted.
Also: every option's help shows its default and a readable value name.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperOption
from typer.testing import CliRunner

from causeflow.cli import app
from tests.support.keys import pg_key_env
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment, parse_json_output

pytestmark = pytest.mark.process

# The commands that talk to a running service over HTTP and never open the store.
API_CLIENT_COMMANDS = {"listen", "trigger", "recover", "replay"}


def all_commands() -> list[tuple[str, Any]]:
    """Every leaf command of `causeflow`, by its full name (`tenant create`)."""
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, command))

    walk("", typer.main.get_command(app))
    return found


COMMANDS = all_commands()


def option_names(command: Any) -> set[str]:
    return {opt for p in command.params if isinstance(p, TyperOption) for opt in p.opts}


def test_the_command_tree_is_what_this_file_expects():
    names = {name for name, _ in COMMANDS}
    assert {"serve", "worker", "migrate", "tenant create", "tenant list", "token"} <= names
    assert {"keys rotate"} | API_CLIENT_COMMANDS <= names


@pytest.mark.parametrize("name, command", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_store_command_takes_data_dir_and_database_url(name: str, command: Any):
    if name in API_CLIENT_COMMANDS:
        assert "--data-dir" not in option_names(command)
        return
    assert {"--data-dir", "--database-url"} <= option_names(command), name


@pytest.mark.parametrize("name, command", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_help_shows_defaults_and_value_names(name: str, command: Any):
    result = CliRunner().invoke(app, [*name.split(), "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    help_text = result.output
    with_default = []
    for param in command.params:
        if not isinstance(param, TyperOption) or param.name == "help":
            continue
        if param.is_flag:
            assert not param.default, f"{name} {param.opts[0]}: a flag that is on by default"
            continue
        # A value option names its value (PATH, URL, SECONDS...) rather than a bare type.
        assert param.metavar, f"{name} {param.opts[0]} has no value name"
        assert param.metavar in help_text
        if param.required:
            continue
        if param.default is None:
            # Either the help says what applies when it is left out (a setting, "now"...) or
            # the option has no default at all, said so with show_default=False.
            assert isinstance(param.show_default, str) or param.show_default is False, (
                f"{name} {param.opts[0]}: say what applies without it"
            )
        if param.default is not None or isinstance(param.show_default, str):
            with_default.append(param.opts[0])
    rows = help_text.splitlines()
    for option in with_default:
        row = next(row for row in rows if f" {option} " in row)
        assert "default" in row, f"{name} {option}: no default in\n{help_text}"
    options_part = help_text.split("Options", 1)[-1]
    for vague in ("<str>", "<int>", "<float>", "<path>", "TEXT", "INTEGER"):
        assert vague not in options_part, f"{name}: {vague} in\n{help_text}"


def test_help_option_defaults_name_the_settings():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "250"})
    assert "CAUSEFLOW_DATA_DIR, else .causeflow" in result.output
    assert "CAUSEFLOW_PORT, else 8000" in result.output


# --- refusing a new, empty store ------------------------------------------------------------


@pytest.fixture
def dep(tmp_path: Path):
    with Deployment(tmp_path) as deployment:
        yield deployment


SHORT_COMMANDS = [
    ["tenant", "create", "--name", "acme", "--json"],
    ["token", "--platform-admin"],
]


def _one_line_refusal(result, store: str, create_hint: bool = True) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert store in line
    for how in ("--data-dir", "--database-url", "CAUSEFLOW_DATA_DIR", "CAUSEFLOW_DATABASE_URL"):
        assert how in line
    assert ("--create" in line) == create_hint
    assert result.stdout == ""
    return line


@pytest.mark.parametrize("args", SHORT_COMMANDS, ids=["tenant create", "token"])
def test_short_commands_refuse_a_data_dir_without_a_store(
    dep: Deployment, tmp_path: Path, args: list[str]
):
    typo = tmp_path / "dta"
    result = dep.run_cli(*args, "--data-dir", str(typo), check=False)
    _one_line_refusal(result, str(typo / "causeflow.db"))
    assert not typo.exists()  # nothing was created on the way
    # the default store (here CAUSEFLOW_DATA_DIR) is named too when it is the one missing
    result = dep.run_cli(*args, check=False)
    _one_line_refusal(result, str(dep.data_dir / "causeflow.db"))
    assert list(dep.data_dir.iterdir()) == []


@pytest.mark.parametrize("args", SHORT_COMMANDS, ids=["tenant create", "token"])
def test_create_makes_the_store_and_later_runs_use_it(
    dep: Deployment, tmp_path: Path, args: list[str]
):
    elsewhere = tmp_path / "other"
    made = dep.run_cli(*args, "--data-dir", str(elsewhere), "--create")
    assert made.stdout.strip()
    assert stat.S_IMODE(os.stat(elsewhere).st_mode) == 0o700
    assert (elsewhere / "causeflow.db").stat().st_size > 0
    assert not (dep.data_dir / "causeflow.db").exists()  # the option beat CAUSEFLOW_DATA_DIR
    again = dep.run_cli(*args, "--data-dir", str(elsewhere))
    assert again.returncode == 0 and again.stdout.strip()


def test_commands_use_an_existing_store_chosen_by_option(dep: Deployment, tmp_path: Path):
    store = tmp_path / "chosen"
    migrated = dep.run_cli("migrate", "--data-dir", str(store))
    assert str(store / "causeflow.db") in migrated.stderr
    made = parse_json_output(
        dep.run_cli("tenant", "create", "--name", "beta", "--json", "--data-dir", str(store)).stdout
    )
    token = dep.run_cli("token", "--tenant", made["tenantId"], "--data-dir", str(store))
    assert token.stdout.count(".") == 2
    listed = dep.run_cli("tenant", "list", "--json", "--data-dir", str(store))
    assert made["tenantId"] in listed.stdout
    # the environment's store is still untouched and still refused
    assert not (dep.data_dir / "causeflow.db").exists()


@pytest.mark.parametrize("args", [["tenant", "list"], ["keys", "rotate"]])
def test_list_and_rotate_refuse_a_missing_store_without_offering_create(
    dep: Deployment, tmp_path: Path, args: list[str]
):
    typo = tmp_path / "nope"
    result = dep.run_cli(*args, "--data-dir", str(typo), check=False)
    _one_line_refusal(result, str(typo / "causeflow.db"), create_hint=False)
    assert not typo.exists()


def test_serve_and_migrate_still_create_the_store(dep: Deployment, tmp_path: Path):
    fresh = tmp_path / "fresh"
    dep.run_cli("migrate", "--data-dir", str(fresh))
    assert (fresh / "causeflow.db").stat().st_size > 0
    server = dep.add_server(start=False)
    server.env["CAUSEFLOW_DATA_DIR"] = str(tmp_path / "served")
    server.start()
    assert (tmp_path / "served" / "causeflow.db").stat().st_size > 0


def test_postgresql_refusal_names_the_database_without_its_password(dep: Deployment):
    require_pg()
    with fresh_database() as url:
        with_password = url.replace("postgres@", "postgres:hunter2secret@")
        env = {**pg_key_env(url)}
        args = ["tenant", "create", "--name", "acme", "--database-url", with_password]
        result = dep.run_cli(*args, check=False, env=env)
        line = _one_line_refusal(result, url.rsplit("/", 1)[1])
        assert "PostgreSQL postgresql://postgres@" in line
        assert "hunter2secret" not in result.stderr + result.stdout
        made = dep.run_cli(*args, "--json", "--create", env=env)
        tenant = parse_json_output(made.stdout)["tenantId"]
        listed = dep.run_cli("tenant", "list", "--database-url", url, env=env)
        assert tenant in listed.stdout
        minted = dep.run_cli("token", "--tenant", tenant, "--database-url", url, env=env)
        assert minted.stdout.count(".") == 2
