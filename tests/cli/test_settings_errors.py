"""A setting the service refuses is named in one line without echoing its value: the value of
a URL setting may carry a password (the webhook proxy's `user:password@`)."""

from __future__ import annotations

import pytest

from causeflow import cli

pytestmark = pytest.mark.unit

PASSWORD = "proxy-pw-5ec4e7"


@pytest.mark.parametrize(
    "value",
    [
        f"http://relay:{PASSWORD}@proxy.internal:99999",  # port out of range
        f"https://relay:{PASSWORD}@proxy.internal:3128",  # not http
        f"http://relay:{PASSWORD}@:3128",  # no host
    ],
)
def test_a_refused_proxy_url_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CAUSEFLOW_WEBHOOK_PROXY", value)
    with pytest.raises(cli.CliError) as caught:
        cli.load()
    message = str(caught.value)
    assert PASSWORD not in message
    assert "webhook_proxy" in message
    assert "\n" not in message
