"""Deliveries/s of one `causeflow serve` (SQLite) to each destination type, beside the webhook.

For each type in turn (webhook to a loopback aiohttp receiver, Redis Streams, NATS JetStream,
RabbitMQ, MQTT at QoS 1) one subscription is created, with a fresh stream, subject, exchange
and queue or topic on the machine's broker (tests.support.brokers), `--events` events are
committed in one transaction straight into the log (bench/delivery.py's bulk mode: the delivery
path alone) and the time runs until every delivery is recorded as `succeeded`, which for a
broker means acknowledged by it (docs/destinations.md). The subscription is then deleted, so
each measurement has exactly one. Medians of `--runs` runs, with the service CPU per delivery
(from /proc) and the load average. Prints, never asserts.

    .venv/bin/python bench/destinations.py                  # 3 runs of 2000 events per type
    .venv/bin/python bench/destinations.py --types redis,nats --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "sdk/python/src"))
sys.path.insert(0, str(ROOT / "src"))

from bench.common import machine  # noqa: E402
from bench.delivery import (  # noqa: E402
    TYPE_ONE,
    Bench,
    quiet_gc,
    receiver_process,
    start_deployment,
)
from tests.support.brokers import DESTINATIONS  # noqa: E402

TYPES = ("webhook", "redis", "nats", "rabbitmq", "mqtt")
WARM_UP = 100  # events per type before each measurement: imports, the broker connection


@contextlib.asynccontextmanager
async def destination(type_: str, receiver: str) -> AsyncIterator[dict[str, Any]]:
    """The subscription body's destination fields, with the broker's side set up and removed."""
    if type_ == "webhook":
        yield {"url": f"{receiver}/{TYPE_ONE}/hook"}
        return
    async with DESTINATIONS[type_]() as dest:
        yield {"type": type_, "url": dest.url, "options": dest.options}


async def one_type(bench: Bench, type_: str, receiver: str, events: int) -> tuple[float, float]:
    """(deliveries/s, service CPU µs per delivery) with one subscription of this type."""
    async with destination(type_, receiver) as fields:
        body = {**fields, "events": [TYPE_ONE]}
        async with bench.http.post(bench.api + "/v1/webhook-subscriptions", json=body) as resp:
            assert resp.status == 201, await resp.text()
            sub_id = (await resp.json())["id"]
        try:
            await bench.throughput(TYPE_ONE, 1, WARM_UP, "bulk")
            return await bench.throughput(TYPE_ONE, 1, events, "bulk")
        finally:
            async with bench.http.delete(f"{bench.api}/v1/webhook-subscriptions/{sub_id}") as resp:
                assert resp.status == 204, await resp.text()


async def measure(args: argparse.Namespace, tmp: Path, receiver: str) -> None:
    deployment, api = start_deployment(tmp, "sqlite", None)
    with deployment:
        creds = deployment.create_tenant("bench")
        rates: dict[str, list[float]] = {t: [] for t in args.types}
        cpu: dict[str, list[float]] = {t: [] for t in args.types}
        async with Bench(deployment, api, creds, receiver) as bench:
            for run in range(args.runs):
                for type_ in args.types:
                    rate, used = await one_type(bench, type_, receiver, args.events)
                    rates[type_].append(rate)
                    cpu[type_].append(used)
                    print(f"  run {run + 1} {type_:<9} {rate:8.0f} deliveries/s", flush=True)
    report(args, rates, cpu)


def report(args: argparse.Namespace, rates: dict[str, list[float]], cpu: dict[str, Any]) -> None:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print()
    print(f"Machine: {machine()}")
    print(f"Load average (1, 5, 15 min) at the end: {load}")
    print(
        f"One `causeflow serve` (SQLite), one subscription at a time, {args.events} events "
        f"committed in bulk; medians of {args.runs} runs"
    )
    print()
    print("| destination | deliveries/s | runs | service CPU µs/delivery |")
    print("|---|---:|---|---:|")
    for type_ in args.types:
        runs = ", ".join(f"{r:.0f}" for r in rates[type_])
        print(
            f"| {type_} | {statistics.median(rates[type_]):.0f} | {runs} "
            f"| {statistics.median(cpu[type_]):.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument("--types", default=",".join(TYPES), help="of " + ", ".join(TYPES))
    args = parser.parse_args()
    quiet_gc()
    args.types = [t.strip() for t in args.types.split(",") if t.strip()]
    unknown = set(args.types) - set(TYPES)
    if unknown:
        raise SystemExit(f"unknown types: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp, receiver_process() as receiver:
        asyncio.run(measure(args, Path(tmp), receiver))


if __name__ == "__main__":
    main()
