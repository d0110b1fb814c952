"""Broker processes the destination tests own: a private Mosquitto they may kill and restart.

`Mosquitto(tmp_path)` writes a configuration (one loopback listener on a free port, anonymous
clients allowed unless told otherwise, an optional ACL, optionally TLS with a certificate from
`tls_files`) and runs `mosquitto -c` on it; `start()` waits until the port accepts, `kill()`
SIGKILLs it and waits until the port is closed, `start()` again brings it back on the same
port; `pause()` stops it answering (SIGSTOP). The shared brokers of the machine are never
stopped by a test.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trustme

from tests.support.ports import free_port, port_open, wait_port_closed

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass(frozen=True)
class TlsFiles:
    """A test CA (`ca`, PEM) and a server certificate it issued, with its key, in files."""

    ca: Path
    cert: Path
    key: Path


def tls_files(directory: Path, *names: str) -> TlsFiles:
    """A fresh CA and a certificate for `names`, written under `directory`."""
    ca = trustme.CA()
    server = ca.issue_cert(*names)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.key))
    with files.cert.open("wb") as out:
        for blob in server.cert_chain_pems:
            out.write(blob.bytes())
    return files


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists()


class Mosquitto:
    def __init__(
        self,
        directory: Path,
        *,
        acl: str | None = None,
        tls: TlsFiles | None = None,
        anonymous: bool = True,
    ) -> None:
        self.port = free_port()
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            "persistence false",
            "log_dest stderr",
            # Run as root, it would switch to the `mosquitto` user, who cannot read the test's
            # private directory; as anyone else the option is ignored.
            f"user {getpass.getuser()}",
        ]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        if acl is not None:
            acl_path = directory / "mosquitto.acl"
            acl_path.write_text(acl)
            lines.append(f"acl_file {acl_path}")
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> Mosquitto:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port, timeout=0.2):
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto not listening on {self.port}: {self.log()}")
            time.sleep(0.05)
        return self

    def pause(self) -> None:
        """SIGSTOP: the broker keeps its connections open and answers nothing."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        wait_port_closed(self.port)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
