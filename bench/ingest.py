"""Inbound alert throughput and latency of one real `causeflow serve` on SQLite.

Measures, over several runs (medians reported), with a load generator in its own process
(aiohttp, `--concurrency` connections) posting `custom` alerts with the ingest key:
- `new`: every alert opens a new incident (alert row, incident row, open fingerprint and
  `incident.created` committed before the 202 is sent);
- `dup90`: 90 % of the alerts repeat one of 64 open alerts (attached), 10 % open new incidents;
- a baseline in the same run: a bare FastAPI endpoint on the same uvicorn/uvloop/httptools
  stack that only reads and HMACs the body.
Alerts/s, p50 and p99 latency. Prints, never asserts.

    .venv/bin/python bench/ingest.py [--runs 3] [--seconds 8] [--concurrency 48]
        [--modes new,dup90] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "sdk/python/src"))
sys.path.insert(0, str(ROOT / "src"))

from bench.common import (  # noqa: E402
    cpu_seconds,
    machine,
    percentile,
    serve_baseline,
    start_baseline,
    start_profile,
)
from tests.support.processes import Deployment  # noqa: E402

ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_INGEST_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_LOG_LEVEL": "warning",
}
HOT_ALERTS = 64
WARMUP_SECONDS = 1.0


# --- the load generator (its own process) ----------------------------------------------------


async def generate(url: str, key: str, mode: str, seconds: float, concurrency: int) -> dict:
    prefix = f"{mode}-{os.getpid()}-{time.time_ns()}"
    counter = 0
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    rng = random.Random(7)
    hot = [f"{prefix}-hot-{i}" for i in range(HOT_ALERTS)]

    def next_body() -> bytes:
        nonlocal counter
        counter += 1
        if mode == "dup90" and rng.random() < 0.9:
            external = rng.choice(hot)
        else:
            external = f"{prefix}-{counter}"
        return orjson.dumps(
            {"externalId": external, "title": f"Alert {external}", "severity": "high"}
        )

    latencies: list[float] = []
    actions: dict[str, int] = {}
    errors = requests = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        if mode == "dup90":  # open the hot alerts first, so repeats attach
            for external in hot:
                body = orjson.dumps({"externalId": external, "title": external})
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                requests += 1
        started = time.perf_counter()
        measure_from = started + WARMUP_SECONDS
        deadline = measure_from + seconds

        async def client() -> None:
            nonlocal errors, requests
            while True:
                body = next_body()
                t0 = time.perf_counter()
                if t0 >= deadline:
                    return
                async with http.post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    status = resp.status
                t1 = time.perf_counter()
                requests += 1
                if t0 < measure_from:
                    continue
                if status != 202:
                    errors += 1
                    continue
                latencies.append(t1 - t0)
                for alert in orjson.loads(payload).get("alerts", ()):
                    actions[alert["action"]] = actions.get(alert["action"], 0) + 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
        "requests": requests,  # warm-up included: the server's CPU time is per request of these
        "actions": actions,
    }


def run_load(url: str, key: str, mode: str, seconds: float, concurrency: int) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        "load",
        "--url",
        url,
        "--key",
        key,
        "--mode",
        mode,
        "--seconds",
        str(seconds),
        "--concurrency",
        str(concurrency),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 120)
    return dict(orjson.loads(out.stdout.strip().splitlines()[-1]))


# --- orchestration ---------------------------------------------------------------------------


def report(results: dict[str, list[dict]]) -> None:
    base = statistics.median(r["rps"] for r in results["baseline"])
    print(f"\nmedians of {len(results['baseline'])} runs:")
    print(f"  {'':<36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}  of baseline")
    for name, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        cpu = statistics.median(r["cpu_us"] for r in runs)
        print(f"  {name:<36} {rps:>9,.0f} {p50:>8.1f} {p99:>8.1f} {cpu:>11.0f}  {rps / base:>6.0%}")


def orchestrate(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if args.server_env:
        print(f"server environment: {' '.join(args.server_env)}")
    print(
        f"load: {args.concurrency} connections, {args.seconds:g} s per measurement "
        f"(after {WARMUP_SECONDS:g} s warm-up), {args.runs} runs"
    )
    baseline_proc, baseline_url = start_baseline(str(Path(__file__).resolve()))
    labels = {
        "baseline": "baseline: FastAPI HMAC endpoint",
        "new": "new incident per alert",
        "dup90": "90 % duplicates (attached)",
    }
    results: dict[str, list[dict]] = {"baseline": []}
    results.update({labels[mode]: [] for mode in args.modes.split(",")})
    try:
        with tempfile.TemporaryDirectory(prefix="cf-bench-ingest-") as tmp:
            extra = dict(item.split("=", 1) for item in args.server_env)
            deployment = Deployment(Path(tmp), env={**ENV, **extra})
            try:
                deployment.migrate()
                tenant = deployment.create_tenant("bench")
                server = deployment.add_server()
                url = f"{server.base_url}/v1/webhooks/{tenant['tenantId']}/custom"
                for run in range(1, args.runs + 1):
                    for mode in ("baseline", *args.modes.split(",")):
                        target = baseline_url if mode == "baseline" else url
                        load_mode = "new" if mode == "baseline" else mode
                        pid = baseline_proc.pid if mode == "baseline" else server.pid
                        assert pid is not None
                        spy = None
                        if args.profile and mode == "new":
                            out = args.profile / f"new-{time.strftime('%H%M%S')}.txt"
                            spy = start_profile(pid, args.seconds, out)
                        before = cpu_seconds(pid)
                        got = run_load(
                            target, tenant["ingestKey"], load_mode, args.seconds, args.concurrency
                        )
                        if spy is not None:
                            spy.wait(60)
                        got["cpu_us"] = (cpu_seconds(pid) - before) / max(got["requests"], 1) * 1e6
                        key = "baseline" if mode == "baseline" else labels[mode]
                        results[key].append(got)
                        print(
                            f"  run {run} {mode:<8} {got['rps']:>8,.0f} alerts/s  "
                            f"p50 {got['p50_ms']:.1f} ms  p99 {got['p99_ms']:.1f} ms  "
                            f"server CPU {got['cpu_us']:.0f} µs/req  "
                            f"errors {got['errors']}  {got['actions']}",
                            flush=True,
                        )
            finally:
                deployment.stop_all()
    finally:
        baseline_proc.terminate()
        baseline_proc.wait(10)
    report(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=["main", "baseline", "load"], default="main")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument(
        "--modes", default="new,dup90", help="comma-separated, measured after the baseline"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for `causeflow serve` (e.g. CAUSEFLOW_RUN_WORKERS=false)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of the `new` runs")
    parser.add_argument("--port", type=int)
    parser.add_argument("--url")
    parser.add_argument("--key")
    parser.add_argument("--mode", choices=["new", "dup90"], default="new")
    args = parser.parse_args()
    if args.role == "baseline":
        serve_baseline(args.port)
    elif args.role == "load":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        result = asyncio.run(
            generate(args.url, args.key, args.mode, args.seconds, args.concurrency)
        )
        print(orjson.dumps(result).decode())
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
