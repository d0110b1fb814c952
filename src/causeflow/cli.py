"""The `causeflow` command: serve, worker, migrate, backup, restore, migrate-store, tenant, token,
keys, listen, trigger.

Every command honours `CAUSEFLOW_DATA_DIR` and `CAUSEFLOW_DATABASE_URL`. Errors are one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError

from causeflow.settings import Settings

GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="CauseFlow: alerts in, incidents and events out (SSE and webhooks).",
)
tenant_app = typer.Typer(no_args_is_help=True, help="Manage tenants.")
app.add_typer(tenant_app, name="tenant")
keys_app = typer.Typer(
    no_args_is_help=True, help="The service's own keys: the sealing key and the JWT secret."
)
app.add_typer(keys_app, name="keys")

# The store options every command that opens the store takes. Their defaults come from the
# settings (the environment), so the help names those rather than a value.
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="PATH",
        help="the SQLite data directory (database, lock, key file)",
        show_default="$CAUSEFLOW_DATA_DIR, else .causeflow",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="postgresql://user@host:port/db to use PostgreSQL instead of SQLite",
        show_default="$CAUSEFLOW_DATABASE_URL, else SQLite in the data directory",
    ),
]
Create = Annotated[
    bool,
    typer.Option(
        "--create",
        metavar="",
        help="create a new, empty store when the one chosen does not exist yet "
        "(without it the command refuses, naming the store it would use)",
    ),
]


class CliError(Exception):
    """A failure reported as one line."""


def load(data_dir: Path | None = None, database_url: str | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise CliError(f"invalid configuration: {settings_problems(exc)}") from exc
    except Exception as exc:  # pydantic's message is long; keep the first useful line
        raise CliError(f"invalid configuration: {str(exc).splitlines()[-2:]}") from exc


def settings_problems(exc: ValidationError) -> str:
    """Each refused setting and why, one line, never its value (a URL may carry a password)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"{where}: {' '.join(str(err['msg']).split())}")
    return "; ".join(parts)


def hold_sqlite_lock(settings: Settings, busy: str | None = None) -> Any:
    """One serving process per SQLite file; short commands do not take this lock (except
    `keys rotate`, which must run alone; `busy` is its message when a server holds it)."""
    from causeflow.db.files import LOCK_NAME, prepare_sqlite_store, private_file

    prepare_sqlite_store(settings)
    lock_path = settings.data_dir / LOCK_NAME
    private_file(lock_path)
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise CliError(
            busy.format(holder=holder)
            if busy
            else f"{settings.sqlite_path} is already served by process {holder}; "
            "SQLite allows one serving process (use PostgreSQL to run several)"
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def require_store(settings: Settings, create_hint: bool = True) -> None:
    """Refuse to run on a store that does not exist yet (a mistyped data directory or URL
    would otherwise become a new, empty store), naming it and the ways to choose another."""
    from causeflow.db.files import describe_store
    from causeflow.db.migrate import store_exists

    if asyncio.run(store_exists(settings)):
        return
    how = (
        "choose the store with --data-dir PATH or --database-url URL "
        "(or CAUSEFLOW_DATA_DIR / CAUSEFLOW_DATABASE_URL)"
    )
    create = "; to create a new, empty store there, add --create" if create_hint else ""
    raise CliError(f"no store at {describe_store(settings)} yet: {how}{create}")


def check_keys(settings: Settings) -> None:
    """Refuse, before anything is touched, a configuration whose keys would have nowhere to
    live but the database (PostgreSQL without CAUSEFLOW_KEY_FILE or the key settings)."""
    from causeflow.auth.keys import KeyStoreError, check_key_sources

    try:
        check_key_sources(settings)
    except KeyStoreError as exc:
        raise CliError(str(exc)) from exc


async def _migrate(settings: Settings) -> None:
    from causeflow.db.migrate import SchemaError, migrate

    try:
        await migrate(settings)
    except SchemaError as exc:
        raise CliError(str(exc)) from exc


async def _bootstrap(settings: Settings) -> dict[str, str] | None:
    """On first start with an empty store: a tenant "default" and its first credentials,
    made only once the place they are handed over to is known to take them."""
    from causeflow.app import build_context
    from causeflow.tenant.service import list_tenants, provision

    ctx = await build_context(settings)
    try:
        async with ctx.db.read() as conn:
            some = await list_tenants(conn, after_id=None, limit=1)
        if some:
            return None
        path = first_run_file(settings)
        if path is not None:
            save_first_run(path, "")  # a file that cannot be written refuses before the tenant
        return (await provision(ctx, name="default")).as_json()
    finally:
        await ctx.db.dispose()


def first_run_file(settings: Settings) -> Path | None:
    """Where the first tenant's credentials go: None for the interactive terminal (SQLite)."""
    from causeflow.tenant.firstrun import credentials_path

    if not settings.is_postgres and sys.stdout.isatty():
        return None
    return credentials_path(settings)


def save_first_run(path: Path, text: str) -> None:
    from causeflow.tenant.firstrun import write_credentials

    try:
        write_credentials(path, text)
    except OSError as exc:
        raise CliError(
            f"cannot write the first-run credentials to {path}: {exc.strerror or exc}; "
            "set CAUSEFLOW_FIRST_RUN_FILE to a file the service may write"
        ) from exc


def hand_over_first_run(settings: Settings, first: dict[str, str], base_url: str) -> None:
    """Show the first tenant's credentials on an interactive terminal (SQLite); anywhere
    else write them to a 0600 file and log only its path, so no log keeps them."""
    from causeflow.clock import Clock
    from causeflow.tenant.firstrun import credentials_text

    text = credentials_text(first, base_url, settings.admin_token_ttl_seconds, Clock().now_ms())
    path = first_run_file(settings)
    if path is None:
        typer.echo("\n" + text)
        return
    save_first_run(path, text)
    logging.getLogger("causeflow.cli").warning(
        "created tenant 'default'; its credentials (API key for the dashboard sign-in, admin "
        "token, ingest key and signing secret) are in %s (mode 0600): read them, then delete "
        "the file",
        path.resolve(),
    )


def configure_logging(settings: Settings) -> None:
    """The service's own log lines (`causeflow.*`) to stderr at CAUSEFLOW_LOG_LEVEL, one line
    per record whatever text it quotes: text (`logtext.LogFormatter`) or, with
    CAUSEFLOW_LOG_FORMAT=json, one JSON object per line (`logtext.JsonFormatter`), which then
    also formats uvicorn's records and libraries' warnings. Libraries' loggers keep their
    levels (SQLAlchemy would log every statement at INFO)."""
    from causeflow.logtext import JsonFormatter, LogFormatter

    logger = logging.getLogger("causeflow")
    if logger.handlers:  # configured already (an earlier call in this process, or the embedder)
        return
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
        for name in ("uvicorn", ""):  # uvicorn's own records, and the root's (libraries)
            other = logging.getLogger(name)
            other.handlers = [handler]
        logging.getLogger("uvicorn").propagate = False
        logging.getLogger().setLevel(logging.WARNING)
    else:
        handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    name = settings.log_level.upper()
    level = logging.DEBUG if name == "TRACE" else logging.getLevelName(name)  # uvicorn's names
    logger.setLevel(level if isinstance(level, int) else logging.INFO)
    logger.propagate = False


def uvicorn_log_config(settings: Settings) -> Any:
    """uvicorn's own logging setup: its default (text), or none with JSON logs (its loggers
    then write through the service's JSON handler, `configure_logging`)."""
    import uvicorn.config

    return None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG


def start_tracing() -> bool:
    """OpenTelemetry traces when the standard `OTEL_*` variables ask for them (off otherwise:
    `tracing/switch.py`)."""
    from causeflow.tracing.setup import configure

    return configure(os.environ)


def stop_tracing() -> None:
    """Export the spans still buffered before the process ends."""
    from causeflow.tracing import spans

    try:
        spans.shutdown()
    except Exception:
        logging.getLogger("causeflow.tracing").exception("could not flush the last spans")


def settle_heap() -> None:
    """Once a serving process has started: hide what startup allocated from the cyclic
    garbage collector, and collect young objects less often.

    Modules, settings, caches and the app live as long as the process; without this every full
    collection walks them all again (pauses of 70-90 ms were measured under load, the worst
    of the delivery latency's tail). Objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


def make_server(config: Any, application: Any) -> Any:
    """A uvicorn server that ends the event streams as soon as a stop signal arrives.

    uvicorn waits for open connections to finish before it runs the lifespan shutdown, and a
    stream never finishes by itself: the stream hub must hear of the signal first.
    """
    import uvicorn

    from causeflow.stream.hub import begin_shutdown

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            settle_heap()

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            begin_shutdown(application.state)

    return Server(config)


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="address to listen on",
            show_default="$CAUSEFLOW_HOST, else 127.0.0.1",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT", help="port to listen on", show_default="$CAUSEFLOW_PORT, else 8000"
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the API and the stream (and, on SQLite, the delivery workers).

    Creates the store (and migrates it) if it does not exist yet; on its first start with an
    empty store it creates a tenant "default" and hands over its credentials once.
    """
    import uvicorn

    from causeflow.app import create_app

    settings = load(data_dir, database_url)
    configure_logging(settings)
    check_keys(settings)
    lock = None if settings.is_postgres else hold_sqlite_lock(settings)
    asyncio.run(_migrate(settings))
    first = asyncio.run(_bootstrap(settings))
    bind_host = host or settings.host
    bind_port = port if port is not None else settings.port
    if first:
        hand_over_first_run(settings, first, f"http://{bind_host}:{bind_port}")
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=bind_host,
        port=bind_port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings),
        # the service writes its own access log (`causeflow.access`, CAUSEFLOW_ACCESS_LOG)
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        limit_concurrency=None,
        backlog=4096,
        # X-Forwarded-For/-Proto only from the configured proxies (none: the headers are ignored).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies,
    )
    start_tracing()
    try:
        make_server(config, application).run()
    finally:
        stop_tracing()
        if lock is not None:
            lock.close()


@app.command()
def worker(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Run only the delivery workers (PostgreSQL; on SQLite `serve` runs them).

    Creates the schema (or upgrades it) if the database has none yet, as `serve` does.
    """
    settings = load(data_dir, database_url)
    configure_logging(settings)
    if not settings.is_postgres:
        raise CliError(
            "on SQLite the delivery workers run inside `causeflow serve`; "
            "set CAUSEFLOW_DATABASE_URL to a PostgreSQL database to run workers apart"
        )
    check_keys(settings)
    asyncio.run(_migrate(settings))
    start_tracing()
    try:
        import uvloop

        uvloop.run(_run_worker(settings))
    except KeyboardInterrupt:
        pass
    finally:
        stop_tracing()


async def _run_worker(settings: Settings) -> None:
    from causeflow.app import build_context
    from causeflow.roles import start_roles

    ctx = await build_context(settings)
    await ctx.broker.start_listening(ctx.db)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_event.set)
    # Before the roles start, so a port already taken fails the start rather than a scrape.
    metrics = serve_worker_metrics(settings)
    stops = await start_roles(ctx, {"worker"})
    settle_heap()
    typer.echo(f"causeflow worker {os.getpid()} running", err=True)
    await stop_event.wait()
    for stop in reversed(stops):
        await stop()
    if metrics is not None:
        metrics.shutdown()
    await ctx.broker.stop()
    await ctx.db.dispose()


def serve_worker_metrics(settings: Settings) -> Any:
    """`/metrics` of a worker process (it has no API port) when a port is configured, behind
    `CAUSEFLOW_METRICS_TOKEN` like the API's.

    A threaded WSGI server in a daemon thread: a scrape never waits for the event loop, and a
    busy loop never delays a scrape.
    """
    if not settings.worker_metrics_port:
        return None
    import socket
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    from causeflow.metrics import metrics_wsgi_app

    port, host = settings.worker_metrics_port, settings.host
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server(
        host, port, metrics_wsgi_app(settings.metrics_token), Server, handler_class=Quiet
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@app.command("migrate")
def migrate_cmd(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Create the store or upgrade its schema."""
    from causeflow.db.files import describe_store

    settings = load(data_dir, database_url)
    typer.echo(f"migrating {describe_store(settings)} ...", err=True)
    # Alembic reports each revision it applies ("Running upgrade 0001 -> 0002 …").
    progress = logging.getLogger("alembic.runtime.migration")
    progress.setLevel(logging.INFO)
    progress.addHandler(logging.StreamHandler(sys.stderr))
    asyncio.run(_migrate(settings))
    typer.echo("schema is up to date", err=True)


PG_BACKUP = (
    "the store is PostgreSQL (CAUSEFLOW_DATABASE_URL): {what} with {tool} (see "
    'docs/deploying.md, "Backup and restore"); `causeflow {command}` is for the SQLite store'
)


def sqlite_store(settings: Settings, command: str, what: str, tool: str) -> Path:
    """The SQLite file of these settings, or a one-line refusal naming PostgreSQL's tool."""
    from causeflow.db.files import sqlite_file

    if settings.is_postgres:
        raise CliError(PG_BACKUP.format(what=what, tool=tool, command=command))
    path = sqlite_file(settings)
    if path is None:
        raise CliError("CAUSEFLOW_DATABASE_URL names no SQLite file (an in-memory database?)")
    return path


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="the backup file to write")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    force: Annotated[bool, typer.Option("--force", help="replace FILE if it exists")] = False,
) -> None:
    """Copy the SQLite store into FILE, online (the service may keep serving and writing).

    The key file is not in the backup: keep a copy of it apart, or the backup's secrets
    cannot be opened.
    """
    from causeflow.db.backup import BackupError, backup_store
    from causeflow.db.files import LOCK_NAME, key_file_path

    settings = load(data_dir, database_url)
    source = sqlite_store(settings, "backup", "back it up", "pg_dump")
    keep = [p for p in (key_file_path(settings), settings.data_dir / LOCK_NAME) if p]
    try:
        done = backup_store(source, file, force=force, keep=keep)
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    typer.echo(
        f"backed up {source} (schema revision {done.revision}, {done.size} bytes) to {file}",
        err=True,
    )
    typer.echo(
        f"the key file ({key_file_path(settings)}) is not in the backup: keep a copy of it "
        "apart; without it the backup's secrets cannot be opened",
        err=True,
    )


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="a backup made by `causeflow backup`")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace the store the data directory holds")
    ] = False,
) -> None:
    """Put a backup in place as the data directory's store, migrated to this version.

    Stop the service first. Refuses to replace an existing store without --force.
    """
    from causeflow.db.backup import BackupError, check_restorable, restore_store

    settings = load(data_dir, database_url)
    target = sqlite_store(settings, "restore", "restore it", "pg_restore")
    try:
        check_restorable(file, target, force=force)  # before the lock creates any file
        lock = hold_sqlite_lock(
            settings,
            busy="`causeflow serve` (process {holder}) is running on this data directory: "
            "stop it before restoring",
        )
        try:
            done = restore_store(file, settings, target, force=force)
        finally:
            lock.close()
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    moved = "" if done.from_revision == done.revision else f", migrated to {done.revision}"
    typer.echo(
        f"restored {file} (schema revision {done.from_revision}{moved}) into {target}", err=True
    )
    problem = asyncio.run(_restored_keys_problem(settings))
    if problem:
        typer.echo(f"warning: {problem}", err=True)


async def _restored_keys_problem(settings: Settings) -> str | None:
    from causeflow.auth.keys import restored_keys_problem
    from causeflow.db.engine import Database

    db = Database(settings, pool_size=1)
    try:
        return await restored_keys_problem(db)
    finally:
        await db.dispose()


MIGRATE_STORE_DONE = (
    "copied and verified. Start the service on PostgreSQL with CAUSEFLOW_DATABASE_URL={url} "
    "and the same keys: CAUSEFLOW_KEY_FILE={keys} (the store's sealed secrets open only with "
    "them); keep the SQLite store as it is until the new one has served"
)


@app.command("migrate-store")
def migrate_store(
    to: Annotated[
        str,
        typer.Option("--to", metavar="URL", help="postgresql://user@host:port/db, empty"),
    ],
    source_url: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="URL",
            help="the SQLite store to copy (sqlite:///path/causeflow.db)",
            show_default="--database-url",
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="the store to copy, as everywhere: a sqlite:/// URL (the same as --from)",
            show_default="$CAUSEFLOW_DATABASE_URL, else SQLite in the data directory",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", metavar="", help="check both stores and count the rows; write nothing"
        ),
    ] = False,
) -> None:
    """Copy the SQLite store into an empty PostgreSQL database, then verify the copy.

    Stop the service first: the command refuses while `causeflow serve` holds the data
    directory. The target is migrated, then every table is copied as it is (secrets stay
    sealed: keep using the same key file) and compared, table by table, by row count and
    checksum. Refuses a target that holds any row. Exit code 1 when the comparison differs.
    """
    if source_url and database_url and source_url != database_url:
        raise CliError("--from and --database-url name two different stores: give one")
    source_url = source_url or database_url
    settings = load(data_dir, source_url)
    source = sqlite_store(settings, "migrate-store", "copy it", "pg_dump")
    if not source.is_file():
        raise CliError(f"there is no store at {source} to copy")
    if source_url and data_dir is None:  # its serving lock and key file are beside it
        settings = settings.model_copy(update={"data_dir": source.parent})
    target = settings.model_copy(update={"database_url": to})
    lock = hold_sqlite_lock(
        settings,
        busy="`causeflow serve` (process {holder}) is running on this data directory: stop "
        "it before copying the store (writes made during the copy would be lost)",
    )
    try:
        asyncio.run(_migrate_store(settings, target, dry_run))
    finally:
        lock.close()


def show_checks(checks: list[Any]) -> None:
    """The comparison of `migrate-store`: one line a table, both sides where they differ."""
    typer.echo(f"{'table':<24} {'rows':>10}  {'checksum (sha256)':<17}  ok")
    for c in checks:
        count = str(c.source_rows)
        if c.source_rows != c.target_rows:
            count = f"{c.source_rows}!={c.target_rows}"
        total = c.source_sum[:16] if c.ok else f"{c.source_sum[:16]}!={c.target_sum[:16]}"
        typer.echo(f"{c.table:<24} {count:>10}  {total:<17}  {'ok' if c.ok else 'MISMATCH'}")


async def _migrate_store(source: Settings, target: Settings, dry_run: bool) -> None:
    from causeflow.db.copy import (
        CopyError,
        check_source,
        check_target,
        copy_store,
        shown,
        source_counts,
        verify_copy,
    )
    from causeflow.db.files import key_file_path
    from causeflow.schema import metadata

    try:
        if dry_run:
            await check_source(source)
            await check_target(target, metadata)
            for name, rows in (await source_counts(source, metadata)).items():
                typer.echo(f"{name:<24} {rows:>10}")
            typer.echo(f"dry run: {shown(target)} can take the copy; nothing written", err=True)
            return
        await copy_store(
            source, target, metadata, progress=lambda t, n: typer.echo(f"copied {t}: {n}", err=True)
        )
        checks = await verify_copy(source, target, metadata)
    except CopyError as exc:
        raise CliError(str(exc)) from exc
    show_checks(checks)
    bad = [c.table for c in checks if not c.ok]
    if bad:
        typer.echo(f"error: the copy differs from the source in: {', '.join(bad)}", err=True)
        raise typer.Exit(1)
    keys = key_file_path(source) or "(the key file or key settings the SQLite service used)"
    typer.echo(MIGRATE_STORE_DONE.format(url=shown(target), keys=keys), err=True)


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(metavar="NAME", help="tenant name")],
    plan: Annotated[
        str | None,
        typer.Option(
            metavar="PLAN",
            help="starter, pro, business or enterprise",
            show_default="$CAUSEFLOW_DEFAULT_PLAN, else business",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="print JSON")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    create: Create = False,
) -> None:
    """Create a tenant with an all-scopes API key, an ingest key and an admin JWT.

    The store must exist already (`causeflow serve` or `causeflow migrate` creates it), unless
    --create is given.
    """
    from causeflow.settings import PLAN_LIMITS
    from causeflow.tenant.schemas import NAME_MAX_LENGTH

    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        raise CliError(f"--name takes 1 to {NAME_MAX_LENGTH} characters")
    if plan is not None and plan not in PLAN_LIMITS:
        raise CliError(f"unknown plan {plan!r}; expected one of {', '.join(PLAN_LIMITS)}")
    settings = load(data_dir, database_url)
    check_keys(settings)
    if not create:
        require_store(settings)

    async def run() -> dict[str, str]:
        from causeflow.app import build_context
        from causeflow.tenant.service import provision

        await _migrate(settings)
        ctx = await build_context(settings)
        try:
            return (await provision(ctx, name=name, plan=plan)).as_json()
        finally:
            await ctx.db.dispose()

    out = asyncio.run(run())
    if as_json:
        typer.echo(orjson.dumps(out).decode())
    else:
        for key, value in out.items():
            typer.echo(f"{key:14} {value}")


@tenant_app.command("list")
def tenant_list(
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="print JSON, one tenant a line")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List every tenant (id, name, plan, created), oldest id first."""
    settings = load(data_dir, database_url)
    require_store(settings, create_hint=False)

    async def run() -> list[dict[str, Any]]:
        from causeflow.db.engine import Database
        from causeflow.tenant.service import list_tenants

        await _migrate(settings)
        db = Database(settings, pool_size=1)
        found: list[dict[str, Any]] = []
        try:
            async with db.read() as conn:
                while True:
                    after = found[-1]["id"] if found else None
                    batch = await list_tenants(conn, after_id=after, limit=500)
                    found += batch
                    if len(batch) < 500:
                        return found
        finally:
            await db.dispose()

    rows = asyncio.run(run())
    if as_json:
        for row in rows:
            typer.echo(orjson.dumps(row).decode())
        return
    table = [("ID", "NAME", "PLAN", "CREATED")] + [
        (r["id"], r["name"], r["plan"], r["createdAt"]) for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        typer.echo("  ".join([*cells, line[3]]))


@app.command()
def token(
    tenant: Annotated[
        str | None, typer.Option(metavar="ID", help="tenant id (ten_…)", show_default=False)
    ] = None,
    role: Annotated[str, typer.Option(metavar="admin|member", help="the token's role")] = "admin",
    ttl: Annotated[int, typer.Option(metavar="SECONDS", help="lifetime in seconds")] = 86400,
    platform_admin: Annotated[
        bool, typer.Option("--platform-admin", metavar="", help="a platform admin token")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    create: Create = False,
) -> None:
    """Print a JWT for a tenant (or a platform admin token)."""
    if ttl <= 0:
        raise CliError("--ttl must be positive")
    if not platform_admin and not tenant:
        raise CliError("give --tenant ID (or --platform-admin)")
    if role not in ("admin", "member"):
        raise CliError("--role must be admin or member")
    settings = load(data_dir, database_url)
    check_keys(settings)
    if not create:
        require_store(settings)

    async def run() -> str:
        from causeflow.app import build_context
        from causeflow.errors import NotFound
        from causeflow.tenant.service import get_tenant_row

        await _migrate(settings)
        ctx = await build_context(settings)
        try:
            now = ctx.clock.now()
            if platform_admin:
                return ctx.tokens.mint_platform_admin(now=now, ttl=ttl)
            assert tenant is not None
            try:
                async with ctx.db.read() as conn:
                    await get_tenant_row(conn, tenant)
            except NotFound:
                raise CliError(f"no tenant {tenant}") from None
            return ctx.tokens.mint(tenant_id=tenant, role=role, now=now, ttl=ttl)
        finally:
            await ctx.db.dispose()

    typer.echo(asyncio.run(run()))


@keys_app.command("rotate")
def keys_rotate(
    jwt: Annotated[
        bool,
        typer.Option(
            "--jwt",
            metavar="",
            help="replace the JWT signing secret instead (every token signed so far stops "
            "being accepted)",
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Replace the sealing key and seal every stored secret again (--jwt: the JWT secret).

    Stop the service first; start it again afterwards.
    """
    settings = load(data_dir, database_url)
    configure_logging(settings)
    check_keys(settings)
    require_store(settings, create_hint=False)
    lock = (
        None
        if settings.is_postgres
        else hold_sqlite_lock(
            settings,
            busy="`causeflow serve` (process {holder}) is running on this data directory: "
            "stop it before rotating keys (it keeps the keys it started with)",
        )
    )
    try:
        asyncio.run(_migrate(settings))
        asyncio.run(_rotate(settings, jwt))
    finally:
        if lock is not None:
            lock.close()


async def _rotate(settings: Settings, jwt: bool) -> None:
    from causeflow.auth.rotation import ROTATOR, rotate_jwt_secret, rotate_sealing_key
    from causeflow.clock import Clock
    from causeflow.db.engine import Database
    from causeflow.schema import metadata

    db = Database(settings, application_name=ROTATOR)
    now_ms = Clock().now_ms()
    try:
        if jwt:
            await rotate_jwt_secret(db, now_ms)
            typer.echo(
                "JWT secret replaced. Every token signed with the old one (admin tokens, "
                "stream tickets, dashboard sessions opened with a token) is no longer "
                "accepted; API keys still work. Back up the key file again and start the "
                "service.",
                err=True,
            )
            return
        done = await rotate_sealing_key(db, now_ms, metadata)
    finally:
        await db.dispose()
    counts = ", ".join(f"{where} {n}" for where, n in sorted(done.values.items())) or "none"
    typer.echo(f"sealing key rotated: new key id {done.key_id}; sealed again: {counts}", err=True)
    if done.unreadable:
        lost = ", ".join(f"{where} {n}" for where, n in sorted(done.unreadable.items()))
        typer.echo(f"warning: values no held key opens were left as they were: {lost}", err=True)
    if settings.secret_key:
        typer.echo(
            "the sealing key comes from CAUSEFLOW_SECRET_KEY: every value is now sealed under "
            "its first key; the keys after it can be removed",
            err=True,
        )
    else:
        typer.echo("back up the key file again, then start the service", err=True)


DEFAULT_API_URL = "http://127.0.0.1:8000"
ApiUrl = Annotated[
    str,
    typer.Option(
        "--api-url", envvar="CAUSEFLOW_API_URL", metavar="URL", help="the service's base URL"
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="CAUSEFLOW_API_KEY",
        metavar="KEY",
        help="an API key (cflo_…)",
        show_default=False,
    ),
]


def _need_key(api_key: str | None) -> str:
    if not api_key:
        raise CliError("no API key: pass --api-key cflo_… or set CAUSEFLOW_API_KEY")
    return api_key


@app.command()
def listen(
    forward_to: Annotated[
        str | None,
        typer.Option(
            "--forward-to",
            metavar="URL",
            help="local URL that receives each event, e.g. http://localhost:3000/hooks",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        str | None,
        typer.Option(
            metavar="TYPE,…", help="comma-separated event types", show_default="every type"
        ),
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
    print_secret: Annotated[
        bool,
        typer.Option("--print-secret", metavar="", help="print the local signing secret and exit"),
    ] = False,
) -> None:
    """Forward the event stream to a local URL as signed webhook deliveries (Ctrl-C stops)."""
    from causeflow.devtools import ToolError
    from causeflow.devtools.listen import Listener, check_forward_url, run_listen
    from causeflow.devtools.secret import load_or_create_secret, secret_path
    from causeflow.devtools.trigger import check_types

    try:
        path = secret_path(os.environ)
        secret = load_or_create_secret(path)
        if print_secret:
            typer.echo(secret)
            return
        if not forward_to:
            raise CliError("give --forward-to URL (e.g. http://localhost:3000/hooks)")
        types = [t.strip() for t in (events or "").split(",") if t.strip()] or None
        listener = Listener(
            forward_to=check_forward_url(forward_to),
            secret=secret,
            api_url=api_url.rstrip("/"),
            api_key=_need_key(api_key),
            events=check_types(types) if types else None,
        )
        typer.echo(f"Your webhook signing secret is {secret} (kept in {path})")
        code = asyncio.run(run_listen(listener))
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    if code:
        sys.exit(code)


@app.command()
def trigger(
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="an event type, e.g. incident.created")
    ],
    incident: Annotated[
        str | None,
        typer.Option(
            "--incident",
            metavar="ID",
            help="the incidentId to put in the sample",
            show_default="the sample's own",
        ),
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Publish a sample event of a type (marked "test": true) and print its envelope."""
    from causeflow.devtools import ToolError
    from causeflow.devtools.trigger import pretty, publish_sample, sample_for

    try:
        sample_for(event_type, incident)  # a typo is reported before any network call
        key = _need_key(api_key)
        envelope = asyncio.run(publish_sample(api_url.rstrip("/"), key, event_type, incident))
    except ToolError as exc:
        raise CliError(str(exc)) from exc
    typer.echo(f"Triggered {envelope.event} ({envelope.id})", err=True)
    typer.echo(pretty(envelope))


def _redeliver_command(action: str) -> Any:
    def command(
        subscription: Annotated[
            str, typer.Argument(metavar="SUBSCRIPTION", help="the subscription id (sub_…)")
        ],
        since: Annotated[str, typer.Option(metavar="TIME", help="window start, RFC 3339")],
        until: Annotated[
            str | None,
            typer.Option(metavar="TIME", help="window end, RFC 3339", show_default="now"),
        ] = None,
        wait: Annotated[
            float,
            typer.Option(metavar="SECONDS", help="seconds to follow progress (0: do not wait)"),
        ] = 300.0,
        api_url: ApiUrl = DEFAULT_API_URL,
        api_key: ApiKey = None,
    ) -> None:
        from causeflow.devtools import ToolError
        from causeflow.devtools.redeliver import redeliver

        try:
            key = _need_key(api_key)
            asyncio.run(
                redeliver(
                    action,
                    api_url.rstrip("/"),
                    key,
                    subscription,
                    since,
                    until,
                    report=lambda line: typer.echo(line, err=True),
                    wait_seconds=wait,
                )
            )
        except ToolError as exc:
            raise CliError(str(exc)) from exc

    return command


app.command(
    "recover", help="Schedule again every failed delivery of a subscription in a time window."
)(_redeliver_command("recover"))
app.command(
    "replay", help="Deliver again every matching event of a time window to a subscription."
)(_redeliver_command("replay"))


def main() -> None:
    try:
        app(standalone_mode=False)
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # anything else is still one line, never a traceback
        from causeflow.auth.keyfile import KeyStoreError

        if isinstance(exc, KeyStoreError):  # keys missing, unreadable or not this database's
            typer.echo(f"error: {exc}", err=True)
            sys.exit(2)
        if isinstance(exc, typer.Exit | typer.Abort):
            sys.exit(getattr(exc, "exit_code", 1))
        # A bare `causeflow` (or `causeflow tenant`) has already printed its help: asking for
        # it is not an error. (Typer's own exception classes live in a private module, so the
        # class is recognised by name, as Typer itself does.)
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)
        if isinstance(exc, typer.TyperException):  # usage mistakes: bad option, missing value
            shown = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            typer.echo(f"error: {' '.join(str(shown).split())}", err=True)
            sys.exit(exc.exit_code)
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
