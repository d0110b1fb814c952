"""The API reference pages load every script, style and icon from the service itself.

`/docs` (Swagger UI) and `/redoc` name no CDN or other origin; each file they reference answers
200 with a script, style or image type; each page's CSP admits scripts from this origin and its
own inline start-up script only. The same pages in headless Chromium (with every request to
another origin refused) render the list of operations.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from causeflow.api.docs import ASSET_TYPES, asset_dir
from tests.support.browser import chromium, new_page, require_browser, screenshot
from tests.support.inproc import Service
from tests.support.processes import Deployment, ServiceProcess

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
# ReDoc's sidebar link "API docs by Redocly" always shows its logo from Redocly's CDN (no option
# turns it off); the page's CSP refuses it before any request is made and ReDoc then hides the
# image. It is the one refusal the browser may report.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
KINDS = {"script": "javascript", "stylesheet": "text/css", "icon": "image/"}


class References(HTMLParser):
    """Every URL a page loads (script src, link href) and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (kind, url)
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = not found.get("src")
            if found.get("src"):
                self.urls.append(("script", str(found["src"])))
        elif tag == "link" and found.get("href"):
            rel = str(found.get("rel", ""))
            self.urls.append(("stylesheet" if "stylesheet" in rel else "icon", str(found["href"])))
        elif tag in ("img", "iframe") and found.get("src"):
            self.urls.append((tag, str(found["src"])))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


def parse(html: str) -> References:
    refs = References()
    refs.feed(html)
    return refs


def csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


@pytest.mark.integration
@pytest.mark.parametrize("path", PAGES)
async def test_pages_reference_only_their_own_origin(sqlite_service: Service, path: str) -> None:
    page = await sqlite_service.client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "cdn." not in html and "https://" not in html and "http://" not in html
    assert "fonts.googleapis" not in html
    refs = parse(html)
    if path != "/docs/oauth2-redirect":
        assert {kind for kind, _ in refs.urls} >= {"script", "icon"}
    for kind, url in refs.urls:
        assert url.startswith("/docs/assets/"), f"{path} loads {url} from elsewhere"
        asset = await sqlite_service.client.get(url)
        assert asset.status_code == 200, url
        assert KINDS[kind] in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > 0


@pytest.mark.integration
async def test_swagger_ui_loads_its_stylesheet_and_bundle(sqlite_service: Service) -> None:
    refs = parse((await sqlite_service.client.get("/docs")).text)
    assert ("stylesheet", "/docs/assets/swagger-ui.css") in refs.urls
    assert ("script", "/docs/assets/swagger-ui-bundle.js") in refs.urls
    assert ("script", "/docs/assets/redoc.standalone.js") in parse(
        (await sqlite_service.client.get("/redoc")).text
    ).urls


@pytest.mark.integration
@pytest.mark.parametrize("path", PAGES)
async def test_csp_admits_this_origin_and_the_inline_start_up_only(
    sqlite_service: Service, path: str
) -> None:
    page = await sqlite_service.client.get(path)
    csp = csp_directives(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in parse(page.text).inline
    ]
    assert csp["script-src"] == ["'self'", *hashes]
    assert not any(v.startswith("http") or v == "*" for values in csp.values() for v in values)
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.integration
async def test_unknown_assets_are_404_in_the_error_shape(sqlite_service: Service) -> None:
    for name in ("nope.js", "..%2Fcore.py", "__init__.py", "swagger-ui-bundle.js.map"):
        resp = await sqlite_service.client.get(f"/docs/assets/{name}")
        assert resp.status_code == 404, name
        assert resp.json()["error"] == "not_found"


@pytest.mark.unit
def test_every_asset_ships_with_the_installed_package() -> None:
    for name in ASSET_TYPES:
        assert (asset_dir() / name).is_file(), name
    bundle = (asset_dir() / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    # Swagger UI 5 renders the OpenAPI 3.1 documents the app serves (4.x does not).
    assert re.search(r'"5\.\d+\.\d+"', bundle)


# --- the same pages in a browser ----------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    require_browser()
    tmp: Path = tmp_path_factory.mktemp("docs")
    with Deployment(tmp, env={"CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0"}) as deployment:
        deployment.migrate()
        yield deployment.add_server()


async def _render(server: ServiceProcess, path: str, selector: str) -> tuple[int, list[str]]:
    """Open `path` with every other origin refused; the count of `selector` once it shows, and
    every request that left this origin."""
    async with chromium() as browser, new_page(browser, server.base_url) as (page, log):
        elsewhere: list[str] = []

        async def only_here(route, request) -> None:  # type: ignore[no-untyped-def]
            if request.url.startswith(server.base_url):
                await route.continue_()
            else:
                elsewhere.append(request.url)
                await route.abort()

        await page.route("**/*", only_here)
        await page.goto(path)
        await page.locator(selector).first.wait_for(timeout=20_000)
        count = await page.locator(selector).count()
        await screenshot(page, "api-reference" + path.replace("/", "-"), full_page=False)
        problems = [
            line
            for line in log.console
            if "Content Security Policy" in line and f"'{REDOC_LOGO}'" not in line
        ]
        assert not log.errors and not problems, str(log)
        return count, elsewhere


@pytest.mark.browser
async def test_swagger_ui_renders_the_operations_offline(server: ServiceProcess) -> None:
    count, elsewhere = await _render(server, "/docs", ".opblock")
    assert count > 50  # every route of the API document
    assert not elsewhere


@pytest.mark.browser
async def test_redoc_renders_the_operations_offline(server: ServiceProcess) -> None:
    count, elsewhere = await _render(server, "/redoc", "[data-section-id^='operation/']")
    assert count > 50
    assert not elsewhere
