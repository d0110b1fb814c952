"""Render the generated parts of the API reference from the code.

- `docs/reference/openapi.json`: the OpenAPI document the application serves at `/openapi.json`.
- The route table of `docs/reference.md` §1.2, between `<!-- generated:begin routes -->` and
  `<!-- generated:end -->`: method, path, summary (from the OpenAPI document) and who may call
  the route (from the route's permission dependency and the role/scope policy).
- `docs/reference/events.md`: the envelope's JSON Schema, then every event type of the catalog
  (`causeflow_sdk.models`) with its domain, emitter, JSON Schema and example.

Run `make reference` (or `python tools/gen_reference.py`) after changing routes, their
permissions or the event models; `--check` only reports files that differ and exits 1.
`tests/system/test_reference_drift.py` fails while the committed files differ from the output.
The output depends on the code alone (not on the environment), so every run gives the same bytes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sdk/python/src"))
sys.path.insert(0, str(ROOT / "src"))

REFERENCE = Path("docs/reference.md")
OPENAPI_JSON = Path("docs/reference/openapi.json")
EVENTS_MD = Path("docs/reference/events.md")
COMMAND = "make reference"
BEGIN = "<!-- generated:begin {name} -->"
END = "<!-- generated:end -->"
METHODS = ("get", "post", "put", "patch", "delete")


def build_app() -> Any:
    """The application as `causeflow serve` builds it, from default settings (no environment)."""
    from causeflow.app import create_app
    from causeflow.settings import Settings

    return create_app(Settings.model_construct())


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# --- who may call a route ---------------------------------------------------------------------


def _allowed_by(actions: tuple[Any, ...]) -> tuple[list[str], list[str]]:
    """The JWT roles and the API-key scopes that grant any of `actions` (from the policy)."""
    from causeflow.auth.principal import ROLES, SCOPES, Principal, allows

    def grants(**kind: Any) -> bool:
        principal = Principal(subject="caller", tenant_id="ten_x", **kind)
        return any(allows(principal, action) for action in actions)

    roles = [r for r in ROLES if grants(kind="user", roles=frozenset({r}))]
    scopes = [s for s in SCOPES if grants(kind="api_key", scopes=frozenset({s}))]
    return roles, scopes


def describe_actions(actions: tuple[Any, ...]) -> str:
    from causeflow.auth.principal import Action

    if Action.PLATFORM in actions:
        return "platform admin"
    roles, scopes = _allowed_by(actions)
    parts = []
    if roles:
        parts.append("role " + ", ".join(roles))
    if scopes:
        parts.append("key " + ", ".join(f"`{s}`" for s in scopes))
    return "; ".join(parts) or "nobody"


def _dependencies(dependant: Any) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _dependencies(dep)


def route_access(route: Any) -> str:
    """Who may call `route`: its `require(...)` check, or a route that authenticates itself."""
    from causeflow.auth.principal import Action
    from causeflow.ingest.router import receive
    from causeflow.stream.router import stream_principal

    if route.endpoint is receive:
        return "key of that tenant with `alerts:ingest` (§6.2)"
    for call in _dependencies(route.dependant):
        if call is stream_principal:
            return describe_actions((Action.STREAM,)) + "; `?token=` ticket; dashboard session"
        if getattr(call, "__qualname__", "") == "require.<locals>.check":
            actions = inspect.getclosurevars(call).nonlocals["actions"]
            return describe_actions(tuple(actions))
    return "anyone"


def _api_routes(app: Any) -> Iterator[tuple[str, Any]]:
    """(full path, route) of the app's own routes and of every feature router it includes."""
    from fastapi.routing import APIRoute

    from causeflow.app import routers

    for route in app.router.routes:
        if isinstance(route, APIRoute):
            yield route.path_format, route
    for router in routers():
        for route in router.routes:
            if isinstance(route, APIRoute):
                yield router.prefix + route.path_format, route


def access_table(app: Any) -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for path, route in _api_routes(app):
        if route.include_in_schema:
            for method in route.methods:
                table[(method.lower(), path)] = route_access(route)
    return table


# --- renderers ----------------------------------------------------------------------------------


def render_openapi(doc: dict[str, Any]) -> str:
    return _json(doc) + "\n"


def render_routes(doc: dict[str, Any], access: dict[tuple[str, str], str]) -> str:
    """Every operation of the OpenAPI document, grouped by tag in the order tags first appear."""
    groups: dict[str, list[str]] = {}
    for path, operations in doc["paths"].items():
        for method in METHODS:
            op = operations.get(method)
            if op is None:
                continue
            tag = (op.get("tags") or ["other"])[0]
            who = access.get((method, path))
            if who is None:
                raise SystemExit(f"{method.upper()} {path}: no route found to read its access from")
            summary = op.get("summary", "")
            groups.setdefault(tag, []).append(
                f"| {method.upper()} | `{path}` | {summary} | {who} |"
            )
    out = [
        f"<!-- Generated by tools/gen_reference.py from the OpenAPI document; run `{COMMAND}`. -->",
        "",
    ]
    for tag, rows in groups.items():
        out += [f"**{tag}**", "", "| method | path | summary | who may call |", "|---|---|---|---|"]
        out += rows
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def render_events() -> str:
    from causeflow_sdk.models import CATALOG, Envelope

    out = [
        "# Event types",
        "",
        f"<!-- Generated by tools/gen_reference.py from causeflow_sdk.models; run `{COMMAND}`. -->",
        "",
        "Every event type with the JSON Schema (Draft 2020-12) of its `data` and an example, as",
        "`GET /v1/event-types` serves them. The envelope, publishing, order and the catalog's",
        "rules are in [the reference, §3](../reference.md#3-events).",
        "",
        "| type | domain | version | emitted by |",
        "|---|---|---|---|",
    ]
    for name, entry in CATALOG.items():
        anchor = name.replace(".", "")
        deprecated = " (deprecated)" if entry.deprecated else ""
        out.append(
            f"| [`{name}`](#{anchor}){deprecated} | {entry.domain} | {entry.version} "
            f"| {entry.emitted_by} |"
        )
    out += [
        "",
        "## Envelope",
        "",
        "Every event travels in this object (keys in this order; `test` only on test events).",
        "",
        "```json",
        _json(Envelope.model_json_schema()),
        "```",
    ]
    for name, entry in CATALOG.items():
        described = entry.describe()
        required = described["schema"].get("required", [])
        out += [
            "",
            f"## {name}",
            "",
            f"{entry.description} Domain `{entry.domain}`, version {entry.version}"
            + (", deprecated" if entry.deprecated else "")
            + f"; emitted by {entry.emitted_by}.",
            "",
            "Required `data` fields: " + ", ".join(f"`{f}`" for f in required) + ".",
            "",
            "Schema:",
            "",
            "```json",
            _json(described["schema"]),
            "```",
            "",
            "Example `data`:",
            "",
            "```json",
            _json(described["example"]),
            "```",
        ]
    return "\n".join(out) + "\n"


def splice(text: str, name: str, block: str, where: Path = REFERENCE) -> str:
    """`text` with the generated block `name` replaced by `block`."""
    begin = BEGIN.format(name=name)
    start = text.find(begin)
    if start < 0:
        raise SystemExit(f"{where}: no {begin} marker")
    body_start = start + len(begin)
    stop = text.find(END, body_start)
    if stop < 0:
        raise SystemExit(f"{where}: {begin} has no {END} after it")
    return text[:body_start] + "\n" + block + text[stop:]


def outputs(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file's full expected content, relative path -> text."""
    app = build_app()
    doc = app.openapi()
    reference = (root / REFERENCE).read_text(encoding="utf-8")
    return {
        OPENAPI_JSON: render_openapi(doc),
        REFERENCE: splice(reference, "routes", render_routes(doc, access_table(app))),
        EVENTS_MD: render_events(),
    }


def stale(root: Path = ROOT) -> list[Path]:
    """The generated files whose committed content differs from what the code gives now."""
    found = []
    for rel, text in outputs(root).items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            found.append(rel)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences, write nothing")
    args = parser.parse_args(argv)
    changed = []
    for rel, text in outputs().items():
        path = ROOT / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "differs" if args.check else "written"
    for rel in changed:
        print(f"{rel}: {verb}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
