"""The first tenant's credentials, made when `causeflow serve` starts on an empty store.

They are the only way into a new installation, so they are explained (what each value is for,
how long the admin token lasts, which one opens the dashboard) and kept out of service logs:
`serve` shows them on an interactive terminal only; anywhere else (a pipe, a log file, a
process manager, any PostgreSQL deployment) they go to a file of mode 0600 and the log names
only that file.
"""

from __future__ import annotations

import os
from pathlib import Path

from causeflow.clock import ms_to_rfc3339
from causeflow.db.files import FILE_MODE, private_dir
from causeflow.settings import Settings

FILE_NAME = "first-run-credentials.txt"


def lifetime(seconds: int) -> str:
    """`86400` -> "24 h", `900` -> "15 min": the largest unit the length fills exactly."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def credentials_text(first: dict[str, str], base_url: str, ttl: int, now_ms: int) -> str:
    """What each credential of the first tenant is for, each value last on its line."""
    tenant = first["tenantId"]
    until = ms_to_rfc3339(now_ms + ttl * 1000)
    return (
        f"Created tenant 'default' ({tenant}). These credentials are shown this once: "
        "keep them somewhere safe.\n"
        f"\nDashboard: {base_url}/ui: sign in by pasting the API key below.\n\n"
        f"  API key        {first['apiKey']}\n"
        "      every scope of the tenant: send it as `X-API-Key` to /v1/...; it is also what\n"
        "      to paste into the dashboard's sign-in. It does not expire (revoke it in\n"
        "      /v1/api-keys).\n"
        f"  admin token    {first['adminToken']}\n"
        f"      a JWT with the tenant's admin role (`Authorization: Bearer ...`), valid\n"
        f"      {lifetime(ttl)} (until {until}); `causeflow token --tenant {tenant}` mints\n"
        "      another. It opens the dashboard too, until it expires.\n"
        f"  ingest key     {first['ingestKey']}\n"
        f"      for monitoring tools only: POST {base_url}/v1/webhooks/{tenant}/<provider>\n"
        f"  signing secret {first['webhookSecret']}\n"
        "      the ingest key's secret: a tool that signs its alerts sends\n"
        "      `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body with this secret>`\n"
        f"  tenant id      {tenant}\n"
        f"\nTry: curl -H 'X-API-Key: {first['apiKey']}' {base_url}/v1/events\n"
    )


def credentials_path(settings: Settings) -> Path:
    """`CAUSEFLOW_FIRST_RUN_FILE`, else the file in the data directory."""
    if settings.first_run_file:
        return Path(settings.first_run_file)
    return settings.data_dir / FILE_NAME


def write_credentials(path: Path, text: str) -> None:
    """Write `text` to `path`, mode 0600 whatever the umask (an older file is replaced)."""
    if not path.parent.exists():
        private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, FILE_MODE)
        out.write(text)
