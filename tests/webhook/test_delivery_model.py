"""A model-based test of delivery: random interleavings of publishing, subscription changes,
receiver failures and stopped, restarted or killed delivery, checked against a simple model.

Each example uses a fresh tenant. The steps run one after another and each returns after its
commit, so the order of the calls is the commit order and the model knows, for every event and
subscription, the rules in force when the event was committed:

- MUST: the rules matched while it was enabled. Once the system has settled it has exactly one
  delivery, and either that delivery `succeeded` and one of the subscription's URLs answered 2xx
  to a request carrying its id (`webhook-id`), or it is `failed` with its attempts in its
  attempt log (`GET /v1/deliveries/{id}`; none when it failed `endpoint_disabled` because the
  subscription was disabled before it was sent). Deleted later: it may or may not be sent.
- DISABLED: the rules matched while it was disabled: one delivery, `failed` with
  `endpoint_disabled` and no attempt; never received.
- NONE: the rules did not match (or the subscription did not exist yet): no delivery, never
  received. No subscription ever receives an event that is not MUST for it.
- After a delete has committed no delivery of the subscription is created (their number right
  after the delete is their number at the end, none pending), and at most one request per
  delivery that existed then arrives afterwards (an attempt a worker had already taken).

The in-process variant (both databases) stops and starts the dispatcher and the delivery
engine (abruptly or gracefully) and restarts the whole service; the process variant
(PostgreSQL) does the same to real `causeflow worker` processes, with SIGTERM and kill -9.
Retries are short (two steps of 50 ms), so a receiver that answers 500 for a while makes some
deliveries fail for good and others succeed on a retry.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from causeflow.app import build_context
from causeflow.context import AppContext
from causeflow.db.engine import Database
from causeflow.db.migrate import migrate
from causeflow.event.tables import event_heads
from causeflow.settings import Settings
from causeflow.tenant.service import provision
from causeflow.webhook.dispatcher import Dispatcher, start_dispatcher
from causeflow.webhook.engine import start_delivery
from causeflow.webhook.tables import deliveries, dispatch_cursors
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, make_settings, running_service
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment, ServiceProcess
from tests.support.receiver import Fail, ThreadedReceiver

T = TypeVar("T")

SUBS = "/v1/webhook-subscriptions"
TYPES = ("incident.created", "remediation.proposed", "investigation.progress")
MUST, DISABLED, NONE = "must", "disabled", "none"
SETTLE_SECONDS = 45.0

FAST_RETRIES = {
    "webhook_retry_schedule": "0.05s,0.05s",
    "webhook_poll_seconds": 0.1,
    "event_poll_seconds": 0.2,
    "webhook_timeout_seconds": 1.0,
    "webhook_lease_seconds": 2,
}
PROCESS_ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": "0.05s,0.05s",
    "CAUSEFLOW_WEBHOOK_POLL_SECONDS": "0.1",
    "CAUSEFLOW_EVENT_POLL_SECONDS": "0.2",
    "CAUSEFLOW_WEBHOOK_TIMEOUT_SECONDS": "1",
    # a killed worker's leases run out soon (still longer than the request timeout)
    "CAUSEFLOW_WEBHOOK_LEASE_SECONDS": "2",
    "CAUSEFLOW_LOG_LEVEL": "warning",
}

# --- what a subscription may be configured with, and what events carry ----------------------

EVENT_LISTS = st.sampled_from(
    [
        ["*"],
        ["incident.created"],
        ["remediation.proposed"],
        ["investigation.progress"],
        ["incident.created", "remediation.proposed"],
        ["remediation.proposed", "investigation.progress"],
    ]
)
FILTERS = st.sampled_from(
    [
        None,
        {"lane": 0},
        {"lane": [1, 2]},
        {"severity": "critical"},
        {"severity": ["critical", "low"]},
        {"requiresApproval": False},
        {"lane": 1, "severity": "low"},
    ]
)
HEADERS = st.sampled_from([None, {"X-Model": "a"}, {"X-Model": "b", "X-Other": "c"}])
RATES = st.sampled_from([None, 200, 1000])
DESCRIPTIONS = st.sampled_from([None, "first", "second"])
# events published together: (type, lane, severity critical / requiresApproval)
BATCHES = st.lists(
    st.tuples(st.sampled_from(TYPES), st.integers(0, 2), st.booleans()), min_size=1, max_size=6
)
# every other kind of step may publish a few events right after it, so that events interleave
# with every kind of step in every example (however few publish steps an example draws)
THEN = st.one_of(BATCHES, st.none())


def event_data(event_type: str, lane: int, flag: bool) -> dict[str, Any]:
    extra: dict[str, Any] = {"lane": lane}
    if event_type == "incident.created":
        extra["severity"] = "critical" if flag else "low"
    elif event_type == "remediation.proposed":
        extra["requiresApproval"] = flag
    return sample_data(event_type, **extra)


def model_match(events: list[str], filter_: dict[str, Any] | None, etype: str, data: dict) -> bool:
    """The rule as the service documents it: a type in the list (or "*"), then every filter
    field present in `data` with the value or one of the listed values."""
    if "*" not in events and etype not in events:
        return False
    for key, wanted in (filter_ or {}).items():
        if key not in data:
            return False
        if isinstance(wanted, list) and data[key] not in wanted:
            return False
        if not isinstance(wanted, list) and data[key] != wanted:
            return False
    return True


@dataclass
class ModelSub:
    key: int
    id: str
    path: str
    events: list[str]
    filter: dict[str, Any] | None
    enabled: bool
    paths: set[str] = field(default_factory=set)
    expect: dict[str, str] = field(default_factory=dict)  # event id -> MUST | DISABLED | NONE
    deleted: bool = False
    rows_at_delete: set[str] = field(default_factory=set)  # delivery ids when deleted
    requests_at_delete: int = 0  # receiver requests recorded when deleted


# --- running the service: a loop in a thread, in-process or as real processes ---------------


class LoopThread:
    """An event loop in a daemon thread: the synchronous state machine submits coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="model", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class System:
    """What the model drives: HTTP calls as the tenant's admin, reads of the database."""

    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.headers: dict[str, str] = {}
        self.tenant_id = ""
        self.receiver_url = ""  # the loopback receiver every subscription points at

    @property
    def db(self) -> Database:
        raise NotImplementedError

    @property
    def client(self) -> httpx.AsyncClient:
        raise NotImplementedError

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.loop.run(coro, timeout)

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kwargs["json"] = body
        return self.run(self.client.request(method, path, **kwargs))

    def new_tenant(self, ctx: AppContext, name: str) -> None:
        made = self.run(provision(ctx, name=name))
        self.tenant_id = made.tenant["id"]
        self.headers = {"Authorization": f"Bearer {made.admin_token}"}

    def ensure_delivering(self) -> None:
        raise NotImplementedError

    def begin_example(self, name: str) -> None:
        raise NotImplementedError


class InProcess(System):
    """The app in this process (its lifespan in the loop thread); the dispatcher and the
    delivery engine are started and stopped by the machine."""

    def __init__(self, loop: LoopThread, settings: Settings) -> None:
        super().__init__(loop)
        self.settings = settings
        self.svc: Service | None = None
        self._stop: asyncio.Event | None = None
        self._host: concurrent.futures.Future[None] | None = None
        self.stop_dispatcher: Callable[[], Coroutine[Any, Any, None]] | None = None
        self.stop_engine: Callable[[], Coroutine[Any, Any, None]] | None = None

    @property
    def service(self) -> Service:
        assert self.svc is not None
        return self.svc

    @property
    def db(self) -> Database:
        return self.service.ctx.db

    @property
    def client(self) -> httpx.AsyncClient:
        return self.service.client

    def open(self) -> None:
        ready: concurrent.futures.Future[Service] = concurrent.futures.Future()

        async def host() -> None:
            self._stop = asyncio.Event()
            try:
                async with running_service(self.settings) as svc:
                    ready.set_result(svc)
                    await self._stop.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise

        self._host = asyncio.run_coroutine_threadsafe(host(), self.loop.loop)
        self.svc = ready.result(60)

    def close(self) -> None:
        self.set_dispatcher(False)
        self.set_engine(False)
        if self._stop is not None and self._host is not None:
            self.loop.loop.call_soon_threadsafe(self._stop.set)
            self._host.result(60)
        self.svc, self._stop, self._host = None, None, None

    def restart(self) -> None:
        """The service stops (its components with it) and starts again on the same database."""
        dispatching, engine = self.stop_dispatcher is not None, self.stop_engine is not None
        self.close()
        self.open()
        self.set_engine(engine)
        self.set_dispatcher(dispatching)

    def set_dispatcher(self, on: bool, abrupt: bool = False) -> None:
        if on and self.stop_dispatcher is None:
            self.stop_dispatcher = self.run(start_dispatcher(self.service.ctx))
        elif not on and self.stop_dispatcher is not None:
            dispatcher = self.service.ctx.dispatcher
            assert isinstance(dispatcher, Dispatcher)
            # abrupt: cancelled at once, maybe between reading a batch and committing it
            self.run(dispatcher.stop(timeout=0) if abrupt else self.stop_dispatcher())
            self.stop_dispatcher = None

    def set_engine(self, on: bool) -> None:
        if on and self.stop_engine is None:
            self.stop_engine = self.run(start_delivery(self.service.ctx))
        elif not on and self.stop_engine is not None:
            self.run(self.stop_engine())
            self.stop_engine = None

    def ensure_delivering(self) -> None:
        self.set_engine(True)
        self.set_dispatcher(True)

    def begin_example(self, name: str) -> None:
        self.new_tenant(self.service.ctx, name)


class Processes(System):
    """A PostgreSQL deployment: one `serve` without workers, two `causeflow worker` slots."""

    def __init__(self, loop: LoopThread, deployment: Deployment, settings: Settings) -> None:
        super().__init__(loop)
        self.deployment = deployment
        self.server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
        self.workers = [deployment.add_worker(start=False) for _ in range(2)]
        self.starting = [False] * len(self.workers)
        for worker in self.workers:
            worker.ready_log = " running"  # printed once its components have started
        self.start_worker(0)
        self.ctx: AppContext = loop.run(build_context(settings))
        self._client = loop.run(_make_client(self.server.base_url))

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    def start_worker(self, index: int, wait: bool = True) -> None:
        """Start it; without `wait` the steps go on while it comes up (it is waited for
        before it is stopped, so SIGTERM finds its handlers installed)."""
        worker = self.workers[index]
        if not worker.alive():
            worker.start(wait=wait, timeout=30)
            self.starting[index] = not wait

    def stop_worker(self, index: int, kill: bool) -> None:
        worker: ServiceProcess = self.workers[index]
        if not worker.alive():
            return
        if kill:
            worker.kill9()
            return
        if self.starting[index]:
            worker.wait_ready(30)
        worker.terminate(timeout=20)

    def ensure_delivering(self) -> None:
        if not any(w.alive() for w in self.workers):
            self.start_worker(0, wait=False)

    def begin_example(self, name: str) -> None:
        self.new_tenant(self.ctx, name)

    def close(self) -> None:
        self.loop.run(self._client.aclose())
        self.loop.run(self.ctx.db.dispose())


async def _make_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=20)


# --- the machine ----------------------------------------------------------------------------


class DeliveryModel(RuleBasedStateMachine):
    """Rules shared by both variants; `system` and `receiver` are set on a subclass."""

    system: System
    receiver: ThreadedReceiver
    examples: Iterator[int]

    def __init__(self) -> None:
        super().__init__()
        self.example = next(self.examples)
        self.system.begin_example(f"model-{os.getpid()}-{self.example}")
        self.subs: list[ModelSub] = []
        self.events: dict[str, tuple[str, dict[str, Any]]] = {}
        self.keys = itertools.count()

    # helpers

    def live(self) -> list[ModelSub]:
        return [s for s in self.subs if not s.deleted]

    def pick(self, index: int) -> ModelSub:
        live = self.live()
        return live[index % len(live)]

    def new_path(self, key: int) -> str:
        return f"/m{self.example}/s{key}/u{next(self.keys)}"

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        resp = self.system.call(method, path, body)
        assert resp.status_code == expect, f"{method} {path} {body}: {resp.text}"
        return resp.json() if resp.content else None

    # subscriptions

    @initialize(events=EVENT_LISTS, filter_=FILTERS, batch=BATCHES)
    def first_subscription(
        self, events: list[str], filter_: dict[str, Any] | None, batch: list[Any]
    ) -> None:
        self.subscribe(events, filter_, True, None, None)
        self.publish(batch)

    @rule(
        events=EVENT_LISTS,
        filter_=FILTERS,
        enabled=st.booleans(),
        headers=HEADERS,
        rate=RATES,
        then=THEN,
    )
    def create(
        self,
        events: list[str],
        filter_: dict[str, Any] | None,
        enabled: bool,
        headers: dict[str, str] | None,
        rate: int | None,
        then: list[Any] | None,
    ) -> None:
        if len(self.live()) < 4:
            self.subscribe(events, filter_, enabled, headers, rate)
        self.publish_after(then)

    def subscribe(
        self,
        events: list[str],
        filter_: dict[str, Any] | None,
        enabled: bool,
        headers: dict[str, str] | None,
        rate: int | None,
    ) -> None:
        key = next(self.keys)
        path = self.new_path(key)
        body = {
            "url": self.system.receiver_url + path,
            "events": events,
            "filter": filter_,
            "enabled": enabled,
            "headers": headers,
            "rateLimitPerSecond": rate,
        }
        made = self.call("POST", SUBS, body, expect=201)
        self.subs.append(ModelSub(key, made["id"], path, events, filter_, enabled, {path}))

    @precondition(lambda self: bool(self.live()))
    @rule(
        index=st.integers(0, 3),
        url=st.booleans(),
        events=st.none() | EVENT_LISTS,
        filter_=st.sampled_from(["keep"]) | FILTERS,
        headers=st.sampled_from(["keep"]) | HEADERS,
        enabled=st.none() | st.booleans(),
        rate=st.sampled_from(["keep"]) | RATES,
        description=st.sampled_from(["keep"]) | DESCRIPTIONS,
        rotate=st.booleans(),
        then=THEN,
    )
    def change(
        self,
        index: int,
        url: bool,
        events: list[str] | None,
        filter_: Any,
        headers: Any,
        enabled: bool | None,
        rate: Any,
        description: Any,
        rotate: bool,
        then: list[Any] | None,
    ) -> None:
        """A PATCH of any subset of the fields, then maybe a rotation of the secret."""
        sub = self.pick(index)
        if rotate:
            self.call("POST", f"{SUBS}/{sub.id}/rotate-secret")
        body: dict[str, Any] = {}
        if url:
            sub.path = self.new_path(sub.key)
            sub.paths.add(sub.path)
            body["url"] = self.system.receiver_url + sub.path
        if events is not None:
            body["events"] = events
        if filter_ != "keep":
            body["filter"] = filter_
        if headers != "keep":
            body["headers"] = headers
        if enabled is not None:
            body["enabled"] = enabled
        if rate != "keep":
            body["rateLimitPerSecond"] = rate
        if description != "keep":
            body["description"] = description
        self.call("PATCH", f"{SUBS}/{sub.id}", body)
        sub.events = body.get("events", sub.events)
        sub.filter = body.get("filter", sub.filter)
        sub.enabled = body.get("enabled", sub.enabled)
        self.publish_after(then)

    @precondition(lambda self: len(self.live()) >= 2)
    @rule(index=st.integers(0, 3), then=THEN)
    def delete(self, index: int, then: list[Any] | None) -> None:
        sub = self.pick(index)
        self.call("DELETE", f"{SUBS}/{sub.id}", expect=204)
        sub.deleted = True
        sub.requests_at_delete = len(self.receiver.requests)
        sub.rows_at_delete = {r.id for r in self.system.run(_rows_of(self.system.db, sub.id))}
        self.publish_after(then)

    # events and the receiver

    @rule(batch=BATCHES)
    def publish(self, batch: list[tuple[str, int, bool]]) -> None:
        for event_type, lane, flag in batch:
            data = event_data(event_type, lane, flag)
            made = self.call("POST", "/v1/events", {"event": event_type, "data": data}, 201)
            self.events[made["id"]] = (event_type, data)
            for sub in self.live():
                if model_match(sub.events, sub.filter, event_type, data):
                    sub.expect[made["id"]] = MUST if sub.enabled else DISABLED

    @precondition(lambda self: bool(self.live()))
    @rule(index=st.integers(0, 3), times=st.integers(1, 6), then=THEN)
    def receiver_fails(self, index: int, times: int, then: list[Any] | None) -> None:
        """The subscription's endpoint answers 500 to its next `times` requests, then 200."""
        self.receiver.set_behavior(self.pick(index).path, Fail(500, times=times))
        self.publish_after(then)

    def publish_after(self, batch: list[Any] | None) -> None:
        if batch:
            self.publish(batch)

    # the end: let the system settle, then compare with the model

    def teardown(self) -> None:
        try:
            self.system.ensure_delivering()
            self.receiver.reset_behaviors()
            self.system.run(_settle(self.system.db, self.system.tenant_id), SETTLE_SECONDS + 5)
            self.check()
        finally:
            self.receiver.reset_behaviors()

    def check(self) -> None:
        requests = self.receiver.requests
        mine = [r for r in requests if r.path.startswith(f"/m{self.example}/")]
        owner = {path: sub for sub in self.subs for path in sub.paths}
        assert all(r.path in owner for r in mine), "a request to a URL no subscription had"
        for sub in self.subs:
            got = [r for r in mine if r.path in sub.paths]
            seen = {r.json()["id"] for r in got if r.json().get("id") in self.events}
            allowed = {e for e, kind in sub.expect.items() if kind == MUST}
            assert seen <= allowed, f"{sub.id} received events its rules never matched"
            if sub.deleted:
                self.check_deleted(sub, requests)
                continue
            rows: dict[str, list[dict[str, Any]]] = {}
            for item in self.deliveries(sub.id):
                rows.setdefault(item["eventId"], []).append(item)
            ok_ids = {r.headers.get("webhook-id") for r in got if r.status and r.status < 300}
            for event_id in self.events:
                kind = sub.expect.get(event_id, NONE)
                found = rows.get(event_id, [])
                if kind == NONE:
                    assert found == [], f"{sub.id}: a delivery of {event_id} it never matched"
                    continue
                assert len(found) == 1, f"{sub.id}: {len(found)} deliveries of {event_id}"
                (row,) = found
                if kind == DISABLED:
                    assert (row["status"], row["lastError"], row["attempts"]) == (
                        "failed",
                        "endpoint_disabled",
                        0,
                    ), row
                    continue
                assert row["status"] in ("succeeded", "failed"), row
                if row["status"] == "succeeded":
                    assert row["id"] in ok_ids, f"{row} succeeded but never received"
                    continue
                detail = self.call("GET", f"/v1/deliveries/{row['id']}")
                if detail["lastError"] != "endpoint_disabled":
                    # every attempt counted is in the log (the log may hold one more: an
                    # attempt whose outcome came after its lease had run out)
                    assert detail["attempts"] > 0, detail
                    assert len(detail["attemptLog"]) >= detail["attempts"], detail

    def check_deleted(self, sub: ModelSub, requests: list[Any]) -> None:
        rows = self.system.run(_rows_of(self.system.db, sub.id))
        assert {r.id for r in rows} == sub.rows_at_delete, "a delivery made after the delete"
        assert all(r.status != "pending" for r in rows), rows
        later = [
            r.headers.get("webhook-id")
            for r in requests[sub.requests_at_delete :]
            if r.path in sub.paths
        ]
        assert len(later) == len(set(later)), "a delivery attempted twice after the delete"
        assert set(later) <= sub.rows_at_delete

    def deliveries(self, sub_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = f"?limit=100&cursor={cursor}" if cursor else "?limit=100"
            page = self.call("GET", f"{SUBS}/{sub_id}/deliveries{params}")
            out += page["items"]
            cursor = page["cursor"]
            if not cursor:
                return out


class InProcessModel(DeliveryModel):
    system: InProcess

    @initialize(dispatching=st.sampled_from([False, False, True]), engine=st.booleans())
    def begin(self, dispatching: bool, engine: bool) -> None:
        self.system.set_engine(engine)
        self.system.set_dispatcher(dispatching)

    @rule(
        action=st.sampled_from(
            ["dispatcher on", "dispatcher off", "dispatcher cancelled", "engine on", "engine off"]
            + ["restart"]
        ),
        then=THEN,
    )
    def delivery(self, action: str, then: list[Any] | None) -> None:
        """Start or stop the dispatcher (gracefully, or cancelled mid-batch) or the engine, or
        restart the whole service."""
        if action == "restart":
            self.system.restart()
        elif action.startswith("dispatcher"):
            self.system.set_dispatcher(action == "dispatcher on", abrupt="cancelled" in action)
        else:
            self.system.set_engine(action == "engine on")
        self.publish_after(then)


class ProcessModel(DeliveryModel):
    system: Processes

    @initialize(running=st.sampled_from([False, False, True]))
    def begin(self, running: bool) -> None:
        if not running:
            for index in range(len(self.system.workers)):
                self.system.stop_worker(index, kill=True)

    @rule(index=st.integers(0, 1), action=st.sampled_from(["start", "stop", "kill -9"]), then=THEN)
    def worker(self, index: int, action: str, then: list[Any] | None) -> None:
        """Start a worker process, or stop it with SIGTERM or kill -9."""
        if action == "start":
            self.system.start_worker(index, wait=False)
        else:
            self.system.stop_worker(index, kill=action == "kill -9")
        self.publish_after(then)


# --- settling and reading the database ------------------------------------------------------


async def _rows_of(db: Database, sub_id: str) -> list[Any]:
    async with db.read() as conn:
        stmt = select(deliveries).where(deliveries.c.subscription_id == sub_id)
        return list((await conn.execute(stmt)).all())


async def _settle(db: Database, tenant_id: str) -> None:
    """Until the dispatcher has passed the tenant's log head and no delivery is pending (twice
    in a row: a delivery that fails for good appends an event of its own)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    quiet = 0
    state: tuple[int, int, int] = (0, 0, 0)
    while quiet < 2:
        async with db.read() as conn:
            head = (
                await conn.execute(
                    select(event_heads.c.position).where(event_heads.c.tenant_id == tenant_id)
                )
            ).scalar() or 0
            cursor = (
                await conn.execute(
                    select(dispatch_cursors.c.position).where(
                        dispatch_cursors.c.tenant_id == tenant_id
                    )
                )
            ).scalar() or 0
            pending = (
                await conn.execute(
                    select(func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.tenant_id == tenant_id, deliveries.c.status == "pending")
                )
            ).scalar_one()
        state = (head, cursor, pending)
        quiet = quiet + 1 if cursor >= head and pending == 0 else 0
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not settled in {SETTLE_SECONDS} s: head, cursor, pending {state}"
            )
        await asyncio.sleep(0.1)


# --- the tests ------------------------------------------------------------------------------

SETTINGS = settings(
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # a failing run is shown unshrunk
    suppress_health_check=list(HealthCheck),
)


@contextmanager
def thread_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    try:
        yield loop
    finally:
        loop.close()


def run_model(
    base: Any, system: Any, receiver: ThreadedReceiver, *, examples: int, steps: int
) -> None:
    """Run the state machine `base` (a fresh subclass, so its class-level wiring stays local)
    against `system` and `receiver`."""

    class Machine(base):  # type: ignore[misc, valid-type]
        pass

    Machine.system = system
    Machine.receiver = receiver
    Machine.examples = itertools.count()
    run_state_machine_as_test(
        Machine, settings=settings(SETTINGS, max_examples=examples, stateful_step_count=steps)
    )


@pytest.mark.integration
def test_delivery_follows_the_model_in_process(backend: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if backend == "pg" else ""
        receiver = stack.enter_context(ThreadedReceiver())
        loop = stack.enter_context(thread_loop())
        settings_ = make_settings(tmp_path, url, run_workers=False, **FAST_RETRIES)
        loop.run(migrate(settings_))
        system = InProcess(loop, settings_)
        system.open()
        stack.callback(system.close)
        system.receiver_url = receiver.url

        run_model(InProcessModel, system, receiver, examples=6, steps=25)


@pytest.mark.process
@pytest.mark.slow
def test_delivery_follows_the_model_with_worker_processes(tmp_path: Path) -> None:
    require_pg()
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database())
        receiver = stack.enter_context(ThreadedReceiver())
        deployment = stack.enter_context(Deployment(tmp_path, url, env=PROCESS_ENV))
        loop = stack.enter_context(thread_loop())
        system = Processes(loop, deployment, make_settings(tmp_path / "reader", url))
        stack.callback(system.close)
        system.receiver_url = receiver.url

        run_model(ProcessModel, system, receiver, examples=4, steps=15)
