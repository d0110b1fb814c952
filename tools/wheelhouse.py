"""Fill a directory with every third-party wheel the container image needs, so that the image
build installs without a package index.

The image's builder stage builds the server's and the SDK's own wheels from the source; their
dependencies (and the build backend) come from PyPI, or from this directory when the build
mounts it (`podman build -v DIR:/wheelhouse:ro --build-arg PIP_NO_INDEX=1 ...`; see
docs/deploying.md, "Container image"). The wheels are chosen for the image's interpreter
(CPython 3.11, manylinux, this machine's architecture), whatever Python runs this script.
Run again, it does nothing while the requirements are unchanged, so a cached directory makes
later builds need no network for Python packages at all.

    python tools/wheelhouse.py DIR
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN = {"causeflow", "causeflow-sdk"}  # built from the source by the image's builder stage
PYTHON_VERSION = "3.11"  # Debian bookworm's python3 (3.11.2)
# What bookworm's 3.11.2 needs beyond this machine's Python: pip evaluates a marker such as
# redis's `async-timeout; python_full_version < "3.11.3"` with the running interpreter's
# full version, whatever --python-version says.
TARGET_ONLY = ["async-timeout>=4.0.3"]
GLIBC_MINOR = 36  # Debian bookworm's glibc 2.36
STAMP = "requirements.txt"
# The extras the image installs by default (the Containerfile's EXTRAS, `brokers` spelt out).
IMAGE_EXTRAS = ("otel", "rabbitmq", "nats", "redis", "mqtt")


def requirements(root: Path = ROOT) -> list[str]:
    """The server's and the SDK's dependencies (with the image's extras) and their build
    backend, plus pip (the image upgrades Debian's)."""
    found: list[str] = ["pip", *TARGET_ONLY]
    for path in (root / "pyproject.toml", root / "sdk/python/pyproject.toml"):
        doc = tomllib.loads(path.read_text())
        found += doc["build-system"]["requires"]
        extras = doc["project"].get("optional-dependencies", {})
        wanted = [*doc["project"]["dependencies"]]
        wanted += [r for extra in IMAGE_EXTRAS for r in extras.get(extra, [])]
        found += [r for r in wanted if _name(r) not in OWN]
    return sorted(set(found))


def _name(requirement: str) -> str:
    for i, char in enumerate(requirement):
        if not (char.isalnum() or char in "-_."):
            return requirement[:i].lower().replace("_", "-")
    return requirement.lower().replace("_", "-")


def platforms(machine: str) -> list[str]:
    """The manylinux tags a bookworm image runs (pip does not widen `manylinux_2_X` itself)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 4, -1)]
    return [*tags, f"manylinux2014_{arch}", f"linux_{arch}"]


def fill(dest: Path, machine: str) -> bool:
    """Download what is missing; False when `dest` was already up to date."""
    wanted = "\n".join(requirements()) + "\n"
    stamp = dest / STAMP
    if stamp.exists() and stamp.read_text() == wanted and any(dest.glob("*.whl")):
        return False
    dest.mkdir(parents=True, exist_ok=True)
    listing = dest / f".{STAMP}.new"
    listing.write_text(wanted)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION]
    for tag in platforms(machine):
        cmd += ["--platform", tag]
    cmd += ["--dest", str(dest), "-r", str(listing)]
    subprocess.run(cmd, check=True)
    listing.replace(stamp)  # written last: an interrupted download is resumed next time
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="the directory to fill")
    parser.add_argument("--arch", default=platform.machine(), help="the image's architecture")
    args = parser.parse_args(argv)
    try:
        changed = fill(args.dest, args.arch)
    except subprocess.CalledProcessError as exc:
        print(f"error: pip download failed with exit code {exc.returncode}", file=sys.stderr)
        return 1
    state = "filled" if changed else "already up to date"
    print(f"{args.dest}: {state} ({len(list(args.dest.glob('*.whl')))} wheels)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
