"""Free loopback TCP ports for servers the tests start.

The port is found by binding to port 0 and releasing it; a tiny race with other binders is
accepted (every server started here sets SO_REUSEADDR and the test machine is ours alone).
"""

from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(port: int, host: str = "127.0.0.1", timeout: float = 10) -> None:
    """Block until nothing accepts connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while port_open(port, host, timeout=0.2):
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {host}:{port} still accepting after {timeout} s")
        time.sleep(0.05)
