"""`causeflow recover` / `causeflow replay`: schedule a window of deliveries again, then show
progress until the subscription has none pending (or the wait ends).

Recover schedules every `failed` delivery created in the window; replay delivers every matching
event of the window again (new deliveries, same event ids). Both go through the public API, so
they work against any deployment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from causeflow.devtools import ToolError
from causeflow_sdk import AsyncClient, CauseFlowAPIError, CauseFlowConnectionError

Report = Callable[[str], None]


async def _pending(client: AsyncClient, subscription_id: str, cap: int = 1000) -> int:
    """Pending deliveries of the subscription, counted up to `cap` (pages of 100)."""
    count, cursor = 0, None
    while count < cap:
        page = await client.subscriptions.deliveries(
            subscription_id, status="pending", limit=100, cursor=cursor
        )
        count += len(page.items)
        cursor = page.cursor
        if not cursor:
            break
    return count


async def redeliver(
    action: str,
    api_url: str,
    api_key: str,
    subscription_id: str,
    since: str,
    until: str | None,
    *,
    report: Report,
    wait_seconds: float = 300.0,
    poll_seconds: float = 1.0,
) -> int:
    """Run `action` ("recover" or "replay"); report progress; return how many were scheduled."""
    async with AsyncClient(api_url, api_key=api_key) as client:
        try:
            scheduled = await getattr(client.subscriptions, action)(subscription_id, since, until)
            report(f"{action}: {scheduled} deliveries scheduled for {subscription_id}")
            if not scheduled or wait_seconds <= 0:
                return int(scheduled)
            deadline = time.monotonic() + wait_seconds
            while True:
                pending = await _pending(client, subscription_id)
                done = max(0, scheduled - pending)
                report(f"  {done}/{scheduled} done, {pending} pending")
                if pending == 0 or time.monotonic() >= deadline:
                    return int(scheduled)
                await asyncio.sleep(poll_seconds)
        except CauseFlowConnectionError as exc:
            raise ToolError(
                f"cannot reach {api_url} (is `causeflow serve` running?): {exc}"
            ) from exc
        except CauseFlowAPIError as exc:
            raise ToolError(f"{action}: {exc}") from exc
