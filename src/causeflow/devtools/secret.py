"""The local signing secret of `causeflow listen`: created once, kept, reused on every run.

It lives in `$XDG_CONFIG_HOME/causeflow/listen-secret` (default `~/.config/causeflow/`),
outside any service's data directory because `listen` is a tool of the developer's machine,
often pointed at a remote service. The file is created with mode 0600 (directory 0700) and
its mode is tightened again if it was loosened, since the secret authenticates deliveries.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from causeflow.devtools import ToolError
from causeflow_sdk.signatures import generate_secret, standard_key

FILE_NAME = "listen-secret"


def secret_path(env: Mapping[str, str]) -> Path:
    """Where the secret is kept, following the XDG base directory convention."""
    config = env.get("XDG_CONFIG_HOME") or ""
    base = Path(config) if config else Path(env.get("HOME") or Path.home()) / ".config"
    return base / "causeflow" / FILE_NAME


def _read(path: Path) -> str:
    secret = path.read_text(encoding="utf-8").strip()
    try:
        standard_key(secret)
    except ValueError:
        raise ToolError(
            f"{path} does not hold a usable signing secret; delete it to get a new one"
        ) from None
    if len(secret) < 16:
        raise ToolError(f"{path} holds a secret shorter than 16 characters; delete it")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
    return secret


def load_or_create_secret(path: Path) -> str:
    """The secret kept at `path`, creating it (`whsec_` + 32 random bytes) on first use."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ToolError(f"cannot read {path}: {exc.strerror or exc}") from exc
    secret = generate_secret()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
        # link() publishes the complete file atomically and fails if one is already there,
        # so two first runs at once agree on one secret and nobody reads a half-written file.
        os.link(tmp, path)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        raise ToolError(f"cannot create {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return secret
