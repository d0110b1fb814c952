"""Broker clients are optional extras: a child Python shows that serving webhooks imports none of
them, and that without them a broker type is reported as not installed instead of failing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import SDK_SRC_DIR, SRC_DIR

pytestmark = pytest.mark.process

CLIENTS = ("redis", "nats", "aio_pika", "aiomqtt")


def run(code: str) -> str:
    env = {"PYTHONPATH": f"{SRC_DIR}:{SDK_SRC_DIR}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_engine_and_the_app_import_no_broker_client() -> None:
    out = run(
        "import sys\n"
        "import causeflow.app, causeflow.webhook.engine, causeflow.webhook.router\n"
        "from causeflow.webhook.destinations import deliverer, pool, checks\n"
        f"print(sorted(m for m in {CLIENTS!r} if m in sys.modules))\n"
    )
    assert out == "[]"


def test_without_the_extra_a_broker_type_is_not_installed() -> None:
    out = run(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {CLIENTS!r}:\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import asyncio, causeflow.app, causeflow.webhook.engine\n"
        "from causeflow.webhook.destinations import registry\n"
        "from causeflow.webhook.destinations.pool import PublisherPool\n"
        "print(registry.available('redis'), registry.has_module('redis'))\n"
        "async def main():\n"
        "    pool = PublisherPool(allow=())\n"
        "    url = 'redis://203.0.113.9'\n"
        "    r = await pool.send('sub_1', 'redis', url, {'stream': 's'}, b'', {})\n"
        "    print(r.error)\n"
        "asyncio.run(main())\n"
    )
    assert out.splitlines() == [
        "False True",
        "broker_unsupported: the redis destination is not installed here "
        "(pip install 'causeflow[redis]')",
    ]
