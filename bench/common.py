"""What every benchmark says about the machine it ran on."""

from __future__ import annotations

import hashlib
import hmac
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
from fastapi import FastAPI, Request, Response


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs, {model}; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


# --- CPU time from /proc (Linux) ------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_cpu(stat: str) -> tuple[float, int]:
    """(CPU seconds, process group) from the text of /proc/PID/stat.

    utime + stime of every thread of the process; the command name (field 2) may hold spaces
    and parentheses, so the fields are counted from its last ")".
    """
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[2])


def processes() -> list[tuple[int, float, int, str]]:
    """Every process still readable: (pid, CPU seconds so far, process group, command line)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cpu, group = stat_cpu(Path(entry.path, "stat").read_text())
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        found.append((int(entry.name), cpu, group, cmdline.strip()))
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, summed over its cores (/proc/stat).

    Busy is everything but idle and iowait: this benchmark's processes and any other work.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return (total - values[3] - values[4]) / TICKS, total / TICKS


# --- the same-run ceiling: a bare FastAPI endpoint ---------------------------------------------
# bench/ingest.py and bench/publish.py start it as their `--role baseline` process and put the
# same load on it as on the service, so a figure is read as a share of what the stack itself
# can do on this machine at that moment.

BASELINE_PATH = "/hook"


def serve_baseline(port: int) -> None:
    """FastAPI + uvicorn (uvloop, httptools, no access log): read the body, HMAC it, answer 202."""
    import uvicorn

    app = FastAPI()
    secret = os.urandom(32)

    @app.post(BASELINE_PATH)
    async def hook(request: Request) -> Response:
        digest = hmac.new(secret, await request.body(), hashlib.sha256).hexdigest()
        return Response(orjson.dumps({"status": "accepted", "digest": digest}), status_code=202)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


def start_baseline(script: str) -> tuple[subprocess.Popen[bytes], str]:
    """`script --role baseline --port N` started and answering; (process, its endpoint's URL)."""
    from tests.support.ports import free_port, port_open

    port = free_port()
    proc = subprocess.Popen([sys.executable, script, "--role", "baseline", "--port", str(port)])
    deadline = time.monotonic() + 20
    while not port_open(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the baseline server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}{BASELINE_PATH}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (from this interpreter's environment) sampling process `pid` for `seconds` into
    `out` (its raw, collapsed-stack format), without pausing it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid)]
        + ["-d", str(int(seconds)), "-f", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
