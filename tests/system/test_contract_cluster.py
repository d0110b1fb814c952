"""The system checks of `tests/system` (schemathesis, route-table isolation) against a two-node
PostgreSQL deployment instead of one process: schemathesis over each node (tenant routes on one,
platform routes on the other), and the route-table isolation check with each resource created
through one node and attacked through the other (the factories and bodies of
`tests/system/test_isolation.py`, over HTTP)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster, pg_cluster
from tests.support.inproc import Tenant
from tests.system.test_isolation import BODIES, EXEMPT, FACTORIES
from tests.system.test_schemathesis import run_st

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # The factories' and the fuzzer's subscriptions point at hosts that do not resolve here;
    # a short attempt timeout keeps the workers' shutdown (which waits for attempts) short.
    env = {"CAUSEFLOW_WEBHOOK_TIMEOUT_SECONDS": "0.5", "CAUSEFLOW_WEBHOOK_LEASE_SECONDS": "2"}
    with pg_cluster(tmp_path_factory.mktemp("contract"), env=env) as deployed:
        yield deployed


@dataclass
class HttpService:
    """What the isolation factories use of the in-process `Service`: an HTTP client."""

    client: httpx.AsyncClient


def tenant_of(cluster: Cluster, name: str) -> Tenant:
    out = cluster.deployment.create_tenant(name)
    return Tenant(
        out["tenantId"], out["apiKey"], out["ingestKey"], out["webhookSecret"], out["adminToken"]
    )


# schemathesis walks every route: minutes on a busy two-core machine
@pytest.mark.timeout(400)
def test_schemathesis_on_both_nodes(cluster: Cluster) -> None:
    run_st(cluster.bases[0], cluster.tenant["adminToken"], "--exclude-path-regex", "^/v1/tenants")
    platform = cluster.deployment.run_cli("token", "--platform-admin").stdout.strip()
    run_st(cluster.bases[1], platform, "--include-path-regex", "^/v1/tenants")


def routes_with_ids(openapi: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    out = []
    for path, operations in openapi["paths"].items():
        params = re.findall(r"\{(\w+)\}", path)
        if params and not EXEMPT.match(path):
            out += [(method.upper(), path, params) for method in sorted(operations)]
    return out


async def test_foreign_ids_are_not_found_across_nodes(cluster: Cluster) -> None:
    attacker, victim = tenant_of(cluster, "attacker"), tenant_of(cluster, "victim")
    async with (
        httpx.AsyncClient(base_url=cluster.bases[0], timeout=10) as node_a,
        httpx.AsyncClient(base_url=cluster.bases[1], timeout=10) as node_b,
    ):
        routes = routes_with_ids((await node_a.get("/openapi.json")).json())
        assert routes, "no routes with resource ids found"
        missing = sorted({p for _, _, params in routes for p in params} - set(FACTORIES))
        assert not missing, f"add isolation factories for path parameters: {missing}"
        creator = HttpService(node_a)
        problems = []
        for method, path, params in routes:
            url = path.format(**{p: await FACTORIES[p](creator, victim) for p in params})  # type: ignore[arg-type]
            before = await node_a.get(url, headers=victim.admin_headers)
            body = BODIES.get((method, path))
            for headers in (attacker.admin_headers, attacker.key_headers):
                resp = await node_b.request(method, url, headers=headers, json=body)
                if resp.status_code != 404 or not resp.json()["error"].endswith("not_found"):
                    problems.append(f"{method} {path}: {resp.status_code} {resp.text[:120]}")
            if method != "GET" and before.status_code == 200:
                after = await node_a.get(url, headers=victim.admin_headers)
                if after.json() != before.json():
                    problems.append(f"{method} {path}: changed the other tenant's resource")
    assert not problems, "\n".join(problems)
