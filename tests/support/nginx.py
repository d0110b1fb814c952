"""A real nginx (Debian's `nginx-light` or `nginx` package) running the sample configuration.

`require_nginx()` skips a test when the binary is missing, or fails it where
CAUSEFLOW_REQUIRE_NGINX=1 says it must be there (CI). `render_sample` turns
`deploy/nginx/causeflow.conf` into one for loopback ports and a test certificate, by replacing
the few values a reader would change; each must appear exactly as written, so the sample
cannot drift away from what the tests run. `Nginx` runs it as a foreground process of its own
(`daemon off`): high ports, and every file it writes (pid, logs, temporary bodies) in its own
directory, so it needs no privilege and touches nothing of the system's nginx.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from .ports import free_port, port_open
from .processes import REPO_ROOT, ServiceProcess

SAMPLE = REPO_ROOT / "deploy" / "nginx" / "causeflow.conf"
REQUIRE_VAR = "CAUSEFLOW_REQUIRE_NGINX"
# Debian installs it in /usr/sbin, which is not on every user's PATH.
CANDIDATES = ("nginx", "/usr/sbin/nginx")

MAIN_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    include {work}/causeflow.conf;
}}
"""


def nginx_binary() -> str | None:
    """The nginx executable: CAUSEFLOW_NGINX, else the first one found."""
    configured = os.environ.get("CAUSEFLOW_NGINX")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_nginx() -> str:
    """The binary's path; skip the calling test without one, fail it when required."""
    binary = nginx_binary()
    if binary is not None:
        return binary
    reason = "nginx not found (apt-get install -y nginx-light, or point CAUSEFLOW_NGINX at it)"
    if os.environ.get(REQUIRE_VAR) == "1":
        pytest.fail(f"{reason}; {REQUIRE_VAR}=1 makes this a failure", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_VAR}=1 to make this a failure")


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    assert count == 1, f"{SAMPLE.name} should hold {old!r} once, holds it {count} times"
    return text.replace(old, new)


def render_sample(
    *, https_port: int, http_port: int, upstream_port: int, cert: Path, key: Path
) -> str:
    """The sample with loopback ports, the test certificate and the service's port."""
    text = SAMPLE.read_text()
    for old, new in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
        ("/etc/ssl/causeflow/fullchain.pem", str(cert)),
        ("/etc/ssl/causeflow/privkey.pem", str(key)),
    ):
        text = _replace_once(text, old, new)
    return text


class Nginx:
    """One nginx process serving the rendered sample in front of `upstream_port`."""

    def __init__(self, binary: str, upstream_port: int, cert: Path, key: Path) -> None:
        # Its own directory, readable by the worker processes (which drop to an unprivileged
        # user when the master runs as root), removed by stop().
        self.work = Path(tempfile.mkdtemp(prefix="causeflow-nginx-"))
        self.work.chmod(0o755)
        (self.work / "tmp").mkdir()
        self.https_port, self.http_port = free_port(), free_port()
        conf = render_sample(
            https_port=self.https_port,
            http_port=self.http_port,
            upstream_port=upstream_port,
            cert=cert,
            key=key,
        )
        (self.work / "causeflow.conf").write_text(conf)
        main = self.work / "nginx.conf"
        main.write_text(MAIN_CONF.format(work=self.work))
        self.process = ServiceProcess(
            role="nginx",
            env=dict(os.environ),
            port=None,
            log_path=self.work / "stderr.log",
            argv=[
                binary,
                "-p",
                str(self.work),
                "-c",
                str(main),
                "-e",
                str(self.work / "error.log"),
            ],
            health_path=None,
        )

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self, timeout: float = 20) -> None:
        self.process.start(wait=True, timeout=timeout)
        wait_until_listening(self.process, self.https_port, timeout)

    def error_log(self) -> str:
        try:
            return (self.work / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no error log)"

    def stop(self) -> None:
        try:
            if self.process.alive():
                self.process.terminate(10)
        except (TimeoutError, OSError):
            pass
        finally:
            self.process.kill9()
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Nginx:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_listening(process: ServiceProcess, port: int, timeout: float) -> None:
    """Block until `port` accepts connections; RuntimeError with the log if nginx exits."""
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if not process.alive():
            raise RuntimeError(f"nginx exited with {process.returncode}\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx not listening after {timeout} s\n{process.log_tail()}")
        time.sleep(0.05)
