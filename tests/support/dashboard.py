"""Helpers for the dashboard's HTTP tests: sign in through the form, read forms' tokens."""

from __future__ import annotations

import re

import httpx

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient, credential: str, next_path: str = "/ui"
) -> httpx.Response:
    form = await client.get("/ui/login")
    assert form.status_code == 200
    return await client.post(
        "/ui/login",
        data={"csrf_token": csrf_token(form.text), "credential": credential, "next": next_path},
    )


def set_cookie_header(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")
