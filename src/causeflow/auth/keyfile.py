"""The key file: the service's own keys, kept beside the data (0600), never inside it.

JSON: `{"format": 1, "jwtSecret": "...", "sealingKey": "<key id>",
"sealingKeys": {"<key id>": "<64 hex chars>", ...}}`. `sealingKey` names the key new values
are sealed under; the others are kept only so values sealed under them still open (during and
after an interrupted rotation). Writes are atomic (a temporary file, fsync, rename, fsync of
the directory), and every read-modify-write holds an exclusive lock on the directory, so
processes starting together agree on one file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from causeflow.auth.crypto import key_id
from causeflow.db.files import FILE_MODE, private_dir, tighten

FORMAT = 1


class KeyStoreError(Exception):
    """The service's keys cannot be found, read or trusted; the message is one line."""


@dataclass
class KeyFile:
    jwt_secret: str | None = None
    sealing_key: str | None = None  # the id of the key new values are sealed under
    sealing_keys: dict[str, bytes] = field(default_factory=dict)

    def add_sealing_key(self, raw: bytes, *, current: bool) -> str:
        kid = key_id(raw)
        self.sealing_keys.setdefault(kid, raw)
        if current or self.sealing_key is None:
            self.sealing_key = kid
        return kid

    def to_json(self) -> bytes:
        doc: dict[str, object] = {"format": FORMAT}
        if self.jwt_secret is not None:
            doc["jwtSecret"] = self.jwt_secret
        if self.sealing_key is not None:
            doc["sealingKey"] = self.sealing_key
            doc["sealingKeys"] = {kid: raw.hex() for kid, raw in self.sealing_keys.items()}
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def parse(cls, path: Path, data: bytes) -> KeyFile:
        def bad(why: str) -> KeyStoreError:
            return KeyStoreError(f"the key file {path} is not valid: {why}")

        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise bad("not JSON") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise bad(f'expected a JSON object with "format": {FORMAT}')
        jwt_secret = doc.get("jwtSecret")
        if jwt_secret is not None and (not isinstance(jwt_secret, str) or not jwt_secret):
            raise bad("jwtSecret must be a non-empty string")
        out = cls(jwt_secret=jwt_secret)
        keys = doc.get("sealingKeys") or {}
        if not isinstance(keys, dict):
            raise bad("sealingKeys must be an object")
        for kid, text in keys.items():
            try:
                raw = bytes.fromhex(text)
            except (TypeError, ValueError) as exc:
                raise bad(f"sealing key {kid} is not hex") from exc
            if len(raw) != 32 or key_id(raw) != kid:
                raise bad(f"sealing key {kid} is not a 32-byte key with that id")
            out.sealing_keys[kid] = raw
        current = doc.get("sealingKey")
        if current is not None and current not in out.sealing_keys:
            raise bad(f"sealingKey {current} is not among sealingKeys")
        out.sealing_key = current
        return out


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the key file's directory exclusively (short: no awaiting inside)."""
    if not path.parent.exists():
        private_dir(path.parent)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def read(path: Path) -> KeyFile | None:
    """The key file's content, or None if there is none. Tightens its mode to 0600."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyStoreError(f"cannot read the key file {path}: {exc.strerror}") from exc
    tighten(path, FILE_MODE)
    return KeyFile.parse(path, data)


def write(path: Path, content: KeyFile) -> None:
    """Replace the key file atomically; it is 0600 whatever the umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, content.to_json())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise KeyStoreError(f"cannot write the key file {path}: {exc.strerror}") from exc
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
