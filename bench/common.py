"""What every benchmark says about the machine it ran on."""

from __future__ import annotations

import os
import platform
import sqlite3
from pathlib import Path


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
