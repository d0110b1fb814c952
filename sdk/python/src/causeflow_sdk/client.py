"""`AsyncClient`: the CauseFlow API from asyncio code (aiohttp underneath).

    async with AsyncClient("http://127.0.0.1:8000", api_key="cflo_…") as cf:
        sub = await cf.subscriptions.create("https://example.com/hooks", ["incident.created"])
        async for item in cf.stream(events=["incident.created"]):
            ...

Credentials: an API key (`X-API-Key`) or a JWT (`Authorization: Bearer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import aiohttp

from causeflow_sdk.http import Transport
from causeflow_sdk.resources import Deliveries, Events, Incidents, Subscriptions
from causeflow_sdk.stream import DEFAULT_IDLE_TIMEOUT, EventStream


class AsyncClient:
    """One client per service and credential; reuse it (it pools connections).

    `timeout` (seconds) bounds each request, and the connect phase of the stream. `session`
    lets the caller bring its own aiohttp session (then not closed by `close()`).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        user_agent: str | None = None,
    ) -> None:
        self._transport = Transport(
            base_url,
            api_key=api_key,
            token=token,
            timeout=timeout,
            session=session,
            user_agent=user_agent,
        )
        self.subscriptions = Subscriptions(self._transport)
        self.deliveries = Deliveries(self._transport)
        self.incidents = Incidents(self._transport)
        self.events = Events(self._transport)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def stream(
        self,
        events: Sequence[str] | None = None,
        incident_id: str | None = None,
        last_event_id: str | None = None,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_reconnects: int | None = None,
        on_connect: Callable[[str | None], None] | None = None,
        on_disconnect: Callable[[BaseException | None, float], None] | None = None,
    ) -> EventStream:
        """The notification stream: `async for item in cf.stream(...)`.

        Items are `causeflow_sdk.models.Envelope`, or `StreamReset` when the service could not
        resume from the last event (refetch state then). Without `last_event_id` it starts
        with the events committed from now on; with it, it first replays those after it.
        Drops are resumed transparently; see `EventStream` for the hooks.
        """
        return EventStream(
            self._transport,
            events=events,
            incident_id=incident_id,
            last_event_id=last_event_id,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            idle_timeout=idle_timeout,
            max_reconnects=max_reconnects,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
        )

    async def create_stream_ticket(self) -> dict[str, Any]:
        """A short-lived `?token=` credential for a browser `EventSource` (the stream only)."""
        result: dict[str, Any] = await self._transport.request(
            "POST", "/v1/notifications/stream-tickets", json={}
        )
        return result

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
