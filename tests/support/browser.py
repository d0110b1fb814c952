"""Headless Chromium driven by Playwright, for tests that need a real browser.

The machine's own Chromium (`/usr/bin/chromium`, Debian's package) is used; Playwright's
downloaded browsers are not. `require_browser()` skips a test when Chromium or Playwright is
missing, or fails it where CAUSEFLOW_REQUIRE_BROWSER=1 says it must be there (CI).
Screenshots go to `test-artifacts/` at the repository root (git-ignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path(os.environ.get("CAUSEFLOW_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    """Why no browser test can run here, or None when one can."""
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def require_browser() -> None:
    """Skip the calling test without a browser; fail it when CAUSEFLOW_REQUIRE_BROWSER=1."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CAUSEFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + "; CAUSEFLOW_REQUIRE_BROWSER=1 makes this a failure", pytrace=False)
    pytest.skip(reason + "; set CAUSEFLOW_REQUIRE_BROWSER=1 to make this a failure")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for the duration of the block."""
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class PageLog:
    """What a page said: console lines and uncaught errors (shown when a test fails)."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.console + [f"ERROR {e}" for e in self.errors])


@asynccontextmanager
async def new_page(
    browser: Browser, base_url: str | None = None, **context_options: Any
) -> AsyncIterator[tuple[Page, PageLog]]:
    """A page in a fresh browser context (own cookies and storage), with its log recorded.

    With `base_url`, relative URLs in `page.goto` resolve against it.
    """
    options: dict[str, Any] = dict(context_options)
    if base_url is not None:
        options["base_url"] = base_url
    context = await browser.new_context(**options)
    page = await context.new_page()
    log = PageLog()
    page.on("console", lambda message: log.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    try:
        yield page, log
    finally:
        await context.close()


def artifact_path(name: str, suffix: str = ".png") -> Path:
    """A file under test-artifacts/ named after `name` (made safe for a file name)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "page"
    return ARTIFACTS / f"{safe}{suffix}"


async def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot of `page` to test-artifacts/<name>.png and return its path."""
    path = artifact_path(name)
    await page.screenshot(path=str(path), full_page=full_page)
    return path
