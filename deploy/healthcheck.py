#!/opt/causeflow/bin/python
"""The container image's health check (HEALTHCHECK): exit 0 healthy, 1 not.

`serve`: GET /healthz on its port answers 200 (the process and its event loop answer; /readyz,
which also asks the database, is for load balancers: a database outage must not get every API
container restarted). A worker: its /metrics when CAUSEFLOW_WORKER_METRICS_PORT is set, else
healthy while it runs (the container ends with it). One-shot commands: healthy.

The check runs as a process of its own; what the container runs is read from the command line
of its first process (tini, then the entrypoint and its arguments).
"""

import os
import sys
import urllib.error
import urllib.request

ENTRYPOINT = "causeflow-entrypoint"


def container_args(cmdline: bytes) -> list[str]:
    """The arguments given to the entrypoint (or to `causeflow` when run without it)."""
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    for i, arg in enumerate(args):
        if arg.endswith(ENTRYPOINT) or arg.endswith("/causeflow"):
            return args[i + 1 :]
    return []


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def local(host: str) -> str:
    if host in ("", "0.0.0.0", "::", "localhost"):  # noqa: S104 - a wildcard, never bound here
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def target(args: list[str]) -> tuple[str, dict[str, str]] | None:
    role = "serve" if not args or args[0].startswith("-") else args[0]
    host = local(option(args, "--host") or os.environ.get("CAUSEFLOW_HOST", ""))
    if role == "serve":
        port = option(args, "--port") or os.environ.get("CAUSEFLOW_PORT") or "8000"
        return f"http://{host}:{port}/healthz", {}
    port = os.environ.get("CAUSEFLOW_WORKER_METRICS_PORT", "0")
    if role == "worker" and port not in ("", "0"):
        token = os.environ.get("CAUSEFLOW_METRICS_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return f"http://{host}:{port}/metrics", headers
    return None


def main() -> int:
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            args = container_args(handle.read())
    except OSError:
        args = []
    found = target(args)
    if found is None:
        return 0
    url, headers = found
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http://, built above
    try:
        with urllib.request.urlopen(request, timeout=4) as resp:  # noqa: S310 - the same
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
