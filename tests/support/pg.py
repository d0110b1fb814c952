"""Throwaway databases on the shared PostgreSQL server at 127.0.0.1:5432 (user postgres, trust).

Each test gets its own database, created before and dropped (forcibly) after, so tests never
see each other's rows. Tests that need PostgreSQL call `require_pg()`: a skip on a machine
without it, a failure where CAUSEFLOW_REQUIRE_PG=1 says it must be there (CI).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import asyncpg
import pytest

T = TypeVar("T")

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
CONNECT_TIMEOUT = 2.0

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def pg_url(dbname: str = "postgres", host: str = PG_HOST, port: int = PG_PORT) -> str:
    return f"postgresql://{PG_USER}@{host}:{port}/{dbname}"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop.

    A fresh thread gets its own loop, so this works from sync tests and fixtures as well as
    from code already running under pytest-asyncio's loop.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _can_connect(host: str, port: int) -> bool:
    try:
        conn = await asyncpg.connect(
            host=host, port=port, user=PG_USER, database="postgres", timeout=CONNECT_TIMEOUT
        )
    except Exception:  # any failure to log in means "not available" for this probe
        return False
    await conn.close()
    return True


def pg_available(host: str = PG_HOST, port: int = PG_PORT) -> bool:
    """True when PostgreSQL accepts a login on host:port within about two seconds."""
    # The bare TCP probe answers "no" at once when nothing listens, without asyncpg's machinery.
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError:
        return False
    return run_sync(_can_connect(host, port))


def require_pg(host: str = PG_HOST, port: int = PG_PORT) -> None:
    """Skip the calling test without PostgreSQL; fail it instead when CAUSEFLOW_REQUIRE_PG=1."""
    if pg_available(host, port):
        return
    message = (
        f"PostgreSQL not reachable at {host}:{port} (user {PG_USER}, trust auth); "
        "start it, or set CAUSEFLOW_REQUIRE_PG=1 to make this a failure"
    )
    if os.environ.get("CAUSEFLOW_REQUIRE_PG") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


async def admin_execute(sql: str, url: str | None = None) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    conn = await asyncpg.connect(url or pg_url(), timeout=CONNECT_TIMEOUT)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def database_exists(name: str, url: str | None = None) -> bool:
    conn = await asyncpg.connect(url or pg_url(), timeout=CONNECT_TIMEOUT)
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    return found is not None


def new_database_name(prefix: str = "cf_test") -> str:
    if not _NAME.fullmatch(prefix) or len(prefix) > 40:
        raise ValueError(f"database prefix must be a short lowercase identifier: {prefix!r}")
    return f"{prefix}_{secrets.token_hex(6)}"


async def create_database(name: str, admin_url: str | None = None) -> None:
    await admin_execute(f'CREATE DATABASE "{name}"', admin_url)


async def drop_database(name: str, admin_url: str | None = None) -> None:
    # FORCE ends sessions a killed service process may have left behind.
    await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url)


@contextmanager
def fresh_database(prefix: str = "cf_test") -> Iterator[str]:
    """A new empty database on the shared server; yields its URL and drops it afterwards."""
    name = new_database_name(prefix)
    run_sync(create_database(name))
    try:
        yield pg_url(name)
    finally:
        run_sync(drop_database(name))


@asynccontextmanager
async def fresh_database_async(prefix: str = "cf_test") -> AsyncIterator[str]:
    """`fresh_database` for async fixtures and tests."""
    name = new_database_name(prefix)
    await create_database(name)
    try:
        yield pg_url(name)
    finally:
        await drop_database(name)
