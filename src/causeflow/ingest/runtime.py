"""The inbound endpoint's per-process parts: SNS certificate fetcher, settings cache, the
batcher of deliveries waiting for their transaction, purge job.

One `InboundRuntime` per process lives in `ctx.inbound`, started by the `inbound`
component (API role) and closed at shutdown. Tenants' inbound settings are cached for a couple
of seconds (every alert needs them); a `tenant.updated` committed in this process drops the
entry at once, other processes see the change within the cache lifetime, like revoked keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from causeflow.auth.crypto import SecretBox
from causeflow.cache import TtlCache
from causeflow.context import AppContext
from causeflow.db.engine import Database
from causeflow.ingest import repository
from causeflow.ingest.batch import inbound_batcher
from causeflow.ingest.sns import CertFetcher
from causeflow.runtime import Component

log = logging.getLogger("causeflow.ingest")

PURGE_BATCH = 500


@dataclass(frozen=True)
class InboundSettings:
    """One tenant's inbound configuration, secrets decrypted."""

    require_signature: bool = False
    sns_topic_arns: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)


class InboundSettingsCache:
    """tenant id -> its settings (None for no such tenant), for `ttl` seconds; concurrent misses
    of one tenant share one read."""

    def __init__(self, db: Database, box: SecretBox, ttl: float = 2.0, max_entries: int = 10000):
        self.db = db
        self.box = box
        self._cache: TtlCache[str, InboundSettings | None] = TtlCache(ttl, max_entries)

    async def get(self, tenant_id: str) -> InboundSettings | None:
        return await self._cache.get(tenant_id, lambda: self._load(tenant_id))

    async def _load(self, tenant_id: str) -> InboundSettings | None:
        from causeflow.tenant.service import inbound_settings

        async with self.db.read() as conn:
            found = await inbound_settings(conn, tenant_id, self.box)
        if found is None:
            return None
        inbound, secrets = found
        return InboundSettings(
            require_signature=bool(inbound.get("requireSignature", False)),
            sns_topic_arns=tuple(inbound.get("snsTopicArns") or ()),
            secrets={k: v for k, v in secrets.items() if isinstance(v, str)},
        )

    def committed(self, appended: list[tuple[str, int, str]]) -> None:
        """Commit listener: a tenant.updated in this process invalidates that tenant at once."""
        for tenant_id, _position, event_type in appended:
            if event_type == "tenant.updated":
                self._cache.drop(tenant_id)


class InboundRuntime:
    def __init__(self, ctx: AppContext) -> None:
        settings = ctx.settings
        self.settings_cache = InboundSettingsCache(ctx.db, ctx.keys.box)
        ctx.db.commit_listeners.append(self.settings_cache.committed)
        self.fetcher = CertFetcher(
            host_pattern=settings.sns_cert_host_pattern,
            timeout=settings.sns_timeout_seconds,
            ca_file=settings.sns_ca_file or None,
            cache_seconds=settings.sns_cert_cache_seconds,
        )
        self._secrets: dict[str, str] = {}
        self._box = ctx.keys.box
        self.batcher = inbound_batcher(ctx.db.transaction, settings.delivery_id_ttl_seconds)

    def webhook_secret(self, sealed: str | None) -> str | None:
        """The ingest key's signing secret, decrypted once per process."""
        if not sealed:
            return None
        plain = self._secrets.get(sealed)
        if plain is None:
            if len(self._secrets) > 10000:
                self._secrets.clear()
            plain = self._secrets[sealed] = self._box.open(sealed)
        return plain

    async def close(self) -> None:
        await self.batcher.close()
        await self.fetcher.close()


def inbound_runtime(ctx: AppContext) -> InboundRuntime:
    """This process's runtime (created on first use if the component did not start it)."""
    runtime = ctx.inbound
    if not isinstance(runtime, InboundRuntime):
        runtime = ctx.inbound = InboundRuntime(ctx)
    return runtime


async def purge_deliveries(db: Database, cutoff_ms: int, batch: int = PURGE_BATCH) -> int:
    """Forget delivery ids received before `cutoff_ms`, in small batches; returns rows deleted."""
    deleted = 0
    while True:
        async with db.transaction() as tx:
            removed, more = await repository.forget_deliveries(tx, cutoff_ms, batch)
        deleted += removed
        if not more:
            return deleted
        await asyncio.sleep(0)


async def start_inbound(ctx: AppContext) -> Callable[[], Awaitable[None]]:
    runtime = inbound_runtime(ctx)
    ttl = ctx.settings.delivery_id_ttl_seconds
    period = max(1.0, min(600.0, ttl / 24))

    async def purge_loop() -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await purge_deliveries(ctx.db, ctx.clock.now_ms() - ttl * 1000)
            except Exception:  # noqa: BLE001  # a failed sweep is retried on the next period
                log.warning("purging old inbound delivery ids failed", exc_info=True)

    task = asyncio.create_task(purge_loop(), name="inbound-purge")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runtime.close()
        ctx.inbound = None

    return stop


def inbound_component() -> Component:
    return Component("inbound", frozenset({"api"}), start_inbound)
