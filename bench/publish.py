"""Publishing throughput of one real `causeflow serve` on SQLite: `POST /v1/events` one event per
request against `POST /v1/events/batch` with batches of events.

Measures, over several runs (medians reported), with a load generator in its own process
(aiohttp, `--concurrency` connections, the tenant's admin key):
- `single`: each request publishes one `incident.created` (committed before the 201);
- `batch`: each request publishes `--batch-size` of them in one transaction (`--batch-clients`
  connections).
- a ceiling in the same run: a bare FastAPI endpoint on the same uvicorn/uvloop/httptools stack
  that only reads and HMACs the body (`bench/common.py`), under the single publish's load
  (the same body and connections, one request each).
Events/s, requests/s, p50 and p99 request latency, the server's CPU time per event (its user +
system time over the run, divided by the events published: on a machine shared with other work
the events/s figure falls while this one holds) and the single publish's share of the ceiling.
With `--profile DIR` the service is sampled by py-spy (`py-spy record -f raw`) during each
single-publish run. Prints, never asserts.

    .venv/bin/python bench/publish.py [--runs 3] [--seconds 8] [--concurrency 16]
        [--batch-size 100] [--batch-clients 16] [--modes single,batch] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
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
    BASELINE_PATH,
    cpu_seconds,
    machine,
    percentile,
    serve_baseline,
    start_baseline,
    start_profile,
)
from causeflow_sdk.models import sample_data  # noqa: E402
from tests.support.processes import Deployment  # noqa: E402

ENV = {"CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0", "CAUSEFLOW_LOG_LEVEL": "warning"}
WARMUP_SECONDS = 1.0
EVENT = "incident.created"


def request_body(mode: str, batch_size: int) -> tuple[str, bytes, int]:
    """(path, body, events per request) of one request of `mode`; every request the same."""
    item = {"event": EVENT, "data": sample_data(EVENT)}
    if mode == "baseline":
        return BASELINE_PATH, orjson.dumps(item), 1
    if mode == "single":
        return "/v1/events", orjson.dumps(item), 1
    return "/v1/events/batch", orjson.dumps({"events": [item] * batch_size}), batch_size


async def generate(
    base_url: str, key: str, mode: str, seconds: float, concurrency: int, batch_size: int
) -> dict:
    path, body, per_request = request_body(mode, batch_size)
    url = base_url if mode == "baseline" else base_url + path
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    expected = {"single": 201, "batch": 200, "baseline": 202}[mode]
    latencies: list[float] = []
    errors = warmup = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        measure_from = time.perf_counter() + WARMUP_SECONDS
        deadline = measure_from + seconds

        async def client() -> None:
            nonlocal errors, warmup
            while (t0 := time.perf_counter()) < deadline:
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
                if t0 < measure_from:
                    warmup += per_request if status == expected else 0
                    continue
                if status != expected:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return {
        "events_per_s": len(latencies) * per_request / seconds,
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
        "warmup_events": warmup,
    }


def run_load(url: str, key: str, mode: str, args: argparse.Namespace) -> dict:
    clients = args.batch_clients if mode == "batch" else args.concurrency
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "load"]
    cmd += ["--url", url, "--key", key, "--mode", mode, "--seconds", str(args.seconds)]
    cmd += ["--concurrency", str(clients), "--batch-size", str(args.batch_size)]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=args.seconds + 120
    )
    return dict(orjson.loads(out.stdout.strip().splitlines()[-1]))


def measured(pid: int, url: str, key: str, mode: str, args: argparse.Namespace) -> dict:
    """One load run, with the server's CPU microseconds per event (warm-up included in both).
    With `--profile`, a single-publish run is sampled by py-spy meanwhile."""
    spy = None
    if args.profile and mode == "single":
        out = args.profile / f"single-{time.strftime('%H%M%S')}.txt"
        spy = start_profile(pid, args.seconds, out)
    before = cpu_seconds(pid)
    got = run_load(url, key, mode, args)
    spent = cpu_seconds(pid) - before
    if spy is not None:
        spy.wait(60)
    total_events = got["events_per_s"] * args.seconds + got["warmup_events"]
    got["cpu_us_per_event"] = spent / max(total_events, 1) * 1e6
    return got


def report(results: dict[str, list[dict]], ceiling: str) -> None:
    runs = len(next(iter(results.values())))
    base = statistics.median(r["events_per_s"] for r in results[ceiling])
    print(f"\nmedians of {runs} runs:")
    print(
        f"  {'':<44} {'events/s':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU µs/event':>20} {'req/s of ceiling':>17}"
    )
    for name, got in results.items():
        eps = statistics.median(r["events_per_s"] for r in got)
        rps = statistics.median(r["rps"] for r in got)
        p50 = statistics.median(r["p50_ms"] for r in got)
        p99 = statistics.median(r["p99_ms"] for r in got)
        cpu = statistics.median(r["cpu_us_per_event"] for r in got)
        print(
            f"  {name:<44} {eps:>10,.0f} {rps:>8,.0f} {p50:>8.1f} {p99:>8.1f} {cpu:>20.0f} "
            f"{rps / base:>17.2f}"
        )


def orchestrate(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(
        f"load: single {args.concurrency} connections; batch {args.batch_clients} connections "
        f"x {args.batch_size} events; {args.seconds:g} s per measurement "
        f"(after {WARMUP_SECONDS:g} s warm-up), {args.runs} runs; SQLite"
    )
    labels = {
        "baseline": f"ceiling: FastAPI HMAC endpoint ({args.concurrency} clients)",
        "single": f"POST /v1/events ({args.concurrency} clients)",
        "batch": f"POST /v1/events/batch x{args.batch_size} ({args.batch_clients} clients)",
    }
    modes = ["baseline", *args.modes.split(",")]
    results: dict[str, list[dict]] = {labels[mode]: [] for mode in modes}
    baseline_proc, baseline_url = start_baseline(str(Path(__file__).resolve()))
    try:
        with tempfile.TemporaryDirectory(prefix="cf-bench-publish-") as tmp:
            deployment = Deployment(Path(tmp), env=ENV)
            try:
                deployment.migrate()
                tenant = deployment.create_tenant("bench")
                server = deployment.add_server()
                for run in range(1, args.runs + 1):
                    for mode in modes:
                        pid = baseline_proc.pid if mode == "baseline" else server.pid
                        url = baseline_url if mode == "baseline" else server.base_url
                        assert pid is not None
                        got = measured(pid, url, tenant["apiKey"], mode, args)
                        results[labels[mode]].append(got)
                        print(
                            f"  run {run} {mode:<8} {got['events_per_s']:>9,.0f} events/s  "
                            f"{got['rps']:>7,.0f} req/s  p50 {got['p50_ms']:.1f} ms  "
                            f"p99 {got['p99_ms']:.1f} ms  server CPU "
                            f"{got['cpu_us_per_event']:.0f} µs/event  errors {got['errors']}",
                            flush=True,
                        )
            finally:
                deployment.stop_all()
    finally:
        baseline_proc.terminate()
        baseline_proc.wait(10)
    report(results, labels["baseline"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--role", choices=["main", "load", "baseline"], default="main")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batch-clients", type=int, default=16)
    parser.add_argument("--url")
    parser.add_argument("--key")
    parser.add_argument("--mode", choices=["single", "batch", "baseline"], default="single")
    parser.add_argument("--modes", default="single,batch", help="measured after the ceiling")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of the single runs")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.role == "baseline":
        serve_baseline(args.port)
    elif args.role == "load":
        import uvloop

        uvloop.install()
        result = asyncio.run(
            generate(args.url, args.key, args.mode, args.seconds, args.concurrency, args.batch_size)
        )
        print(orjson.dumps(result).decode())
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
