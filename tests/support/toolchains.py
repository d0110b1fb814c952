"""Other languages' toolchains (Node.js, Go) for tests of the example receivers.

`require_tool(name, env)` returns the executable's path, or skips the calling test when it is
missing, or fails it where `env`=1 says it must be there (CI sets CAUSEFLOW_REQUIRE_NODE and
CAUSEFLOW_REQUIRE_GO). `go_env(tmp)` keeps Go's caches in a temporary directory and Go off the
network: the examples use the standard library only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL = {"node": "apt-get install -y nodejs", "go": "apt-get install -y golang-go"}


def require_tool(name: str, env: str) -> str:
    """The path of `name` on PATH; skip without it, fail when the environment variable `env`=1."""
    found = shutil.which(name)
    if found is not None:
        return found
    reason = f"`{name}` is not on PATH ({INSTALL.get(name, 'install it')})"
    if os.environ.get(env) == "1":
        pytest.fail(f"{reason}; {env}=1 makes this a failure", pytrace=False)
    pytest.skip(f"{reason}; set {env}=1 to make this a failure")


def go_env(tmp: Path) -> dict[str, str]:
    """The environment for `go build`: caches under `tmp`, no module downloads, no toolchain
    switch."""
    env = dict(os.environ)
    env.update(
        {
            "GOCACHE": str(tmp / "gocache"),
            "GOPATH": str(tmp / "gopath"),
            "GOFLAGS": "",
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "GO111MODULE": "on",
            "CGO_ENABLED": "0",
        }
    )
    return env
