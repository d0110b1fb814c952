"""The container image under test: Debian's podman and runc, a Debian base image made here with
debootstrap, the image built from this tree's Containerfile, and containers run from it.

No image registry is reachable, so the base (`localhost/debian:bookworm`) is made by
`debootstrap --variant=minbase` and `podman import`, once: later runs find it in podman's
storage. The Python packages come from a wheelhouse filled on the host by tools/wheelhouse.py
(kept in CAUSEFLOW_WHEELHOUSE, default ~/.cache/causeflow/wheelhouse) and mounted into the
build, which then needs no package index; apt inside the build still needs a Debian mirror.

This machine's kernel wants runc (not crun) and explicit ulimits for `build` and `run`; the
containers share the host's network, so they reach the machine's PostgreSQL at 127.0.0.1 and
the test's loopback receiver. `require_container_tools()` skips without podman, runc and
debootstrap, and fails instead where CAUSEFLOW_REQUIRE_CONTAINER=1 says they must be there.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .processes import REPO_ROOT

BASE_IMAGE = "localhost/debian:bookworm"
IMAGE = "localhost/causeflow:test"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
INSTALL = "apt-get install -y debootstrap podman runc"


def runc() -> str:
    return shutil.which("runc") or "/usr/sbin/runc"


def require_container_tools() -> None:
    """Skip without podman, runc or debootstrap; fail where CAUSEFLOW_REQUIRE_CONTAINER=1."""
    missing = [t for t in ("podman", "debootstrap") if shutil.which(t) is None]
    if not Path(runc()).exists():
        missing.append("runc")
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed ({INSTALL})"
    if os.environ.get("CAUSEFLOW_REQUIRE_CONTAINER") == "1":
        pytest.fail(f"{reason}; CAUSEFLOW_REQUIRE_CONTAINER=1 makes this a failure", pytrace=False)
    pytest.skip(f"{reason}; set CAUSEFLOW_REQUIRE_CONTAINER=1 to make this a failure")


def podman(
    *args: str, check: bool = True, timeout: float = 120, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", "--runtime", runc(), *args]
    result = subprocess.run(
        cmd,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited with {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def ensure_base_image(workdir: Path) -> bool:
    """Make the Debian base image unless podman has it; True if it was made now."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return False
    root = workdir / "rootfs"
    try:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(root)],
            check=True,
            capture_output=True,
            timeout=1200,
        )
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "-", BASE_IMAGE],
            stdin=tar.stdout,
            check=True,
            capture_output=True,
            timeout=600,
        )
        assert tar.wait(60) == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return True


def wheelhouse() -> Path:
    """The host's wheelhouse for the build, filled (or found up to date) by the tool."""
    default = Path.home() / ".cache" / "causeflow" / "wheelhouse"
    path = Path(os.environ.get("CAUSEFLOW_WHEELHOUSE") or default)
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools/wheelhouse.py"), str(path)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return path


def build_image(wheels: Path, tag: str = IMAGE) -> None:
    """Build this tree's Containerfile as the documentation says, offline for Python."""
    podman(
        "build",
        "--format=docker",  # the OCI format has no HEALTHCHECK
        *ULIMITS,
        f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
        "--build-arg=PIP_NO_INDEX=1",
        f"--volume={wheels}:/wheelhouse:ro",
        f"--tag={tag}",
        str(REPO_ROOT),
        timeout=1800,
    )


def run_args(env: dict[str, str], volume: str | None) -> list[str]:
    args = ["--network=host", *ULIMITS]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    if volume is not None:
        args += ["--volume", f"{volume}:/data"]
    return args


def run_once(
    env: dict[str, str],
    *command: str,
    volume: str | None = None,
    entrypoint: str | None = None,
    image: str = IMAGE,
) -> subprocess.CompletedProcess[str]:
    """A one-shot container (`migrate`, `tenant create …`); removed when it ends."""
    args = ["run", "--rm", *run_args(env, volume)]
    if entrypoint is not None:
        args.append(f"--entrypoint={entrypoint}")
    return podman(*args, image, *command, timeout=180)


@dataclass
class Container:
    """A long-running container (`serve`, `worker`) of the image, removed at the end."""

    env: dict[str, str]
    command: tuple[str, ...] = ()
    volume: str | None = None
    image: str = IMAGE
    name: str = field(default_factory=lambda: f"cf-test-{secrets.token_hex(4)}")

    def start(self) -> Container:
        podman(
            "run",
            "--detach",
            f"--name={self.name}",
            "--health-interval=disable",  # no systemd here to run the timer; run by hand
            *run_args(self.env, self.volume),
            self.image,
            *self.command,
        )
        return self

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = podman("inspect", "--format={{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def wait_http(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if not self.running() or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered 200\n{self.logs()}")
            time.sleep(0.25)

    def wait_log(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.logs():
            if not self.running() or time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never logged\n{self.logs()}")
            time.sleep(0.25)

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        return podman("healthcheck", "run", self.name, check=False)

    def restart(self) -> None:
        podman("restart", "--time=15", self.name, timeout=60)

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", "--time=5", self.name, check=False, timeout=60)
