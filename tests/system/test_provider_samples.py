"""The sample requests of docs/providers.md cannot rot: every registered provider has one, and
each, read from the page, is posted to the service and opens an incident.

A sample is a `<!-- sample: NAME -->` block: `body='…'`, an optional signature line in the one
form the page uses, and a curl command. The command is split as a shell would split it and its
variables are given the test tenant's values (`$sig` the signature the sample's line computes,
with the secret it names). The tenant requires signatures, with every provider secret set, so a
signing provider's sample must carry the right signature header or be refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from causeflow.ingest.providers.registry import PROVIDERS
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "providers.md"
SAMPLE = re.compile(r"<!-- sample: ([a-z]+) -->\n```sh\n(.*?)```", re.S)
BODY = re.compile(r"\Abody='([^']*)'\n", re.S)
SIGNATURE = re.compile(
    r"""^sig=\$\(printf '%s' "\$body" \| openssl dgst -sha256 -hmac "\$([A-Z_]+)" -hex \| """
    r"""sed 's/\^\.\* //'\)\n""",
    re.M,
)
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
PROVIDER_SECRETS = {
    "GRAFANA_SECRET": "grafana-hmac-secret",
    "SENTRY_SECRET": "sentry-client-secret",
    "PAGERDUTY_SECRET": "pagerduty-subscription-secret",
}
BASE_URL = "http://cf.test"


@dataclass
class Sample:
    provider: str
    body: str
    secret_name: str | None  # the variable its signature line keys the HMAC with
    command: list[str]  # the curl command's words, variables still unexpanded
    block: str  # the whole shell block


def samples() -> dict[str, Sample]:
    found: dict[str, Sample] = {}
    for name, block in SAMPLE.findall(DOC.read_text()):
        assert name not in found, f"two samples for {name}"
        body = BODY.match(block)
        assert body, f"the {name} sample must start with body='…'"
        rest = block[body.end() :]
        signature = SIGNATURE.match(rest)
        if signature:
            rest = rest[signature.end() :]
        command = shlex.split(rest.replace("\\\n", " "), posix=True)
        assert command[0] == "curl", f"the {name} sample's command is not curl: {command[:3]}"
        secret_name = signature.group(1) if signature else None
        found[name] = Sample(name, body.group(1), secret_name, command, block)
    return found


def expand(word: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"the sample uses ${name}, which the page does not define"
        return values[name]

    return VARIABLE.sub(value, word)


def request_of(sample: Sample, values: dict[str, str]) -> tuple[str, dict[str, str], str]:
    """The URL, headers and body the curl command sends (only the options the page uses)."""
    words = [expand(word, values) for word in sample.command[1:]]
    url, headers, data = None, {}, None
    while words:
        word = words.pop(0)
        if word == "-sS":
            continue
        if word == "-X":
            assert words.pop(0) == "POST"
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "--data":
            data = words.pop(0)
        elif url is None and word.startswith("http"):
            url = word
        else:
            raise AssertionError(f"the {sample.provider} sample has an unexpected word {word!r}")
    assert url is not None and data is not None, f"the {sample.provider} sample lacks a URL or data"
    return url, headers, data


def variables(tenant: Tenant, sample: Sample) -> dict[str, str]:
    values = {
        "CAUSEFLOW_API_URL": BASE_URL,
        "TENANT_ID": tenant.id,
        "INGEST_KEY": tenant.ingest_key,
        "WEBHOOK_SECRET": tenant.webhook_secret,
        **PROVIDER_SECRETS,
        "body": sample.body,
    }
    if sample.secret_name is not None:
        secret = values[sample.secret_name]
        values["sig"] = hmac.new(secret.encode(), sample.body.encode(), hashlib.sha256).hexdigest()
    return values


def test_every_registered_provider_has_one_sample() -> None:
    assert sorted(samples()) == sorted(PROVIDERS)


def test_every_provider_that_signs_signs_its_sample() -> None:
    unsigned = [
        name for name, s in samples().items() if PROVIDERS[name].signs and not s.secret_name
    ]
    assert not unsigned, f"these providers sign, their samples should too: {unsigned}"


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_the_sample_opens_an_incident(service: Service, provider: str) -> None:
    tenant = await service.tenant("acme")
    setup = await service.client.patch(
        "/v1/tenant",
        json={"inbound": {"requireSignature": True, "secrets": _secrets()}},
        headers=tenant.admin_headers,
    )
    assert setup.status_code == 200, setup.text
    sample = samples()[provider]
    url, headers, data = request_of(sample, variables(tenant, sample))
    assert url.startswith(f"{BASE_URL}/v1/webhooks/{tenant.id}/{provider}")
    resp = await service.client.post(url, content=data.encode(), headers=headers)
    assert resp.status_code == 202, resp.text
    (alert,) = resp.json()["alerts"]
    assert alert["action"] == "created", resp.text
    incident = await service.client.get(
        f"/v1/incidents/{alert['incidentId']}", headers=tenant.key_headers
    )
    assert incident.status_code == 200, incident.text
    assert incident.json()["source"] == provider


def _secrets() -> dict[str, str]:
    return {name.split("_")[0].lower(): value for name, value in PROVIDER_SECRETS.items()}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_signature_line_computes_what_the_service_checks() -> None:
    """The page's openssl line, run by bash, gives the HMAC the test (and the service) uses."""
    for sample in samples().values():
        if sample.secret_name is None:
            continue
        lines = sample.block.split("\ncurl ", 1)[0] + "\n"
        secret = "s3cret with spaces and ünïcode"
        result = subprocess.run(
            ["bash", "-c", lines + 'printf "%s" "$sig"'],
            env={"PATH": "/usr/bin:/bin", sample.secret_name: secret},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        expected = hmac.new(secret.encode(), sample.body.encode(), hashlib.sha256).hexdigest()
        assert result.stdout == expected, sample.provider
