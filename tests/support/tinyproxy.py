"""A real HTTP forward proxy (Debian's `tinyproxy` package) on a free loopback port.

`require_tinyproxy()` skips a test when the binary is missing, or fails it where
CAUSEFLOW_REQUIRE_TINYPROXY=1 says it must be there (CI). `Tinyproxy` runs its own foreground
process (`-d`) with a config file of its own; its log goes to its output, which `log()` reads,
so the test sees each request the proxy handled (`Request ...: POST http://...`, `CONNECT ...`).
It touches nothing of the packaged system service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from .ports import free_port, port_open

REQUIRE_VAR = "CAUSEFLOW_REQUIRE_TINYPROXY"
VIA_NAME = "causeflow-test-proxy"


def require_tinyproxy() -> str:
    binary = shutil.which("tinyproxy") or (
        "/usr/bin/tinyproxy" if os.access("/usr/bin/tinyproxy", os.X_OK) else None
    )
    if binary is not None:
        return binary
    reason = "tinyproxy not found (apt-get install -y tinyproxy)"
    if os.environ.get(REQUIRE_VAR) == "1":
        pytest.fail(f"{reason}; {REQUIRE_VAR}=1 makes this a failure", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_VAR}=1 to make this a failure")


class Tinyproxy:
    def __init__(self, work: Path, *, user: str | None = None, password: str | None = None):
        self.binary = require_tinyproxy()
        self.work = work
        self.port = free_port()
        self.user = user
        self.password = password
        self.log_path = work / "tinyproxy.out"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        creds = f"{self.user}:{self.password}@" if self.user else ""
        return f"http://{creds}127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            "LogLevel Info",
            "MaxClients 50",
            "Allow 127.0.0.1",
            f'ViaProxyName "{VIA_NAME}"',
        ]
        if self.user:
            lines.append(f"BasicAuth {self.user} {self.password}")
        return "\n".join(lines) + "\n"

    def start(self) -> Tinyproxy:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = self.work / "tinyproxy.conf"
        conf.write_text(self.config())
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                [self.binary, "-d", "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tinyproxy did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests(self) -> list[str]:
        """The request lines the proxy logged (`POST http://...`, `CONNECT host:port ...`)."""
        out = []
        for line in self.log().splitlines():
            if "]: Request (file descriptor" in line:
                out.append(line.split("): ", 1)[1])
        return out

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> Tinyproxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
