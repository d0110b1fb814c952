"""Runtime configuration: every `CAUSEFLOW_*` environment variable, with its default.

One `Settings` object is built by the composition root (`app.create_app`, the CLI) and passed
down; nothing reads the environment anywhere else. Every duration is a setting so tests can
shrink days to seconds.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# One source of a CSP frame-ancestors list: 'self', a scheme (`https:`), or an origin whose
# host may start with `*.`; nothing that could end the directive or the header.
FRAME_SOURCE = re.compile(
    r"'self'|https?:"
    r"|https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?"
    r"|(\*\.)?[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
)

PLAN_LIMITS: dict[str, int] = {"starter": 100, "pro": 500, "business": 2000, "enterprise": 2000}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAUSEFLOW_", extra="ignore")

    # storage
    data_dir: Path = Path(".causeflow")
    database_url: str = ""
    sqlite_synchronous: str = "NORMAL"
    db_pool_size: int = 10

    # keys: from here, else from the key file (generated there on first start); never kept in
    # the database. On PostgreSQL one of the two sources is required.
    secret_key: str = ""  # the sealing key; "new,old" (64 hex chars each) during a rotation
    jwt_secret: str = ""
    key_file: str = ""  # default: <data_dir>/keys.json on SQLite; none on PostgreSQL
    jwt_issuer: str = "causeflow"
    jwt_audience: str = "causeflow-api"
    jwks_url: str = ""
    jwks_file: str = ""
    jwks_timeout_seconds: float = 3.0
    jwks_refresh_seconds: float = 300.0
    jwks_min_refresh_seconds: float = 30.0
    jwks_allow_http: bool = False
    jwt_tenant_claim: str = "tenant_id"
    admin_token_ttl_seconds: int = 86400
    # where `serve` writes the first tenant's credentials when it may not show them on a
    # terminal; default: <data_dir>/first-run-credentials.txt
    first_run_file: str = ""

    # http
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    log_level: str = "info"
    log_format: str = "text"  # text | json (one JSON object per line)
    access_log: bool = True  # one `causeflow.access` line per HTTP request
    # Peers (addresses or networks) whose X-Forwarded-For / X-Forwarded-Proto are believed:
    # the reverse proxies in front of `serve`. Empty: none; `*`: any peer.
    forwarded_allow_ips: str = "127.0.0.1,::1"

    # limits
    default_plan: str = "business"
    rate_limit_per_minute: int | None = None
    ingest_rate_limit_per_minute: int = 6000
    # events per minute a tenant may publish (POST /v1/events and /v1/events/batch); 0 = none
    publish_rate_limit_per_minute: int = 0
    # how long a process keeps a tenant's limits before reading them again
    tenant_limits_cache_seconds: float = 10.0
    ingest_refused_rate_limit_per_minute: int = 120
    rate_limit_sync_seconds: float = 0.5
    max_api_keys_per_tenant: int = 100
    max_subscriptions_per_tenant: int = 100
    idempotency_ttl_seconds: int = 86400
    idempotency_inflight_seconds: int = 60

    # stream
    sse_ping_seconds: float = 30.0
    sse_max_replay: int = 10000
    sse_max_streams_per_tenant: int = 1000
    sse_buffer_events: int = 1000
    sse_ticket_ttl_seconds: int = 900
    sse_retry_ms: int = 3000
    event_poll_seconds: float = 1.0

    # webhooks
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h,10h,10h"
    webhook_rotation_overlap_seconds: int = 86400
    webhook_disable_after_seconds: int = 5 * 86400
    webhook_max_inflight_per_host: int = 16
    webhook_max_inflight: int = 256
    webhook_allow_cidrs: str = ""
    webhook_allow_http: bool = False
    webhook_lease_seconds: int = 60
    webhook_connect_timeout_seconds: float = 5.0
    webhook_timeout_seconds: float = 15.0
    webhook_poll_seconds: float = 1.0
    webhook_ca_file: str = ""
    webhook_dns_cache_seconds: int = 60
    # every delivery (and token request) leaves through this HTTP proxy: http://[user:pass@]host:port
    webhook_proxy: str = ""
    webhook_recover_window_seconds: int = 14 * 86400
    run_workers: bool | None = None  # None: inside `serve` on SQLite only
    worker_metrics_port: int = 0  # `causeflow worker` serves /metrics here; 0 = off
    metrics_token: str = ""  # when set, /metrics wants `Authorization: Bearer <token>`
    # per-subscription delivery series on /metrics (one label value per subscription: opt in)
    metrics_per_subscription: bool = False

    # inbound
    sns_cert_host_pattern: str = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
    sns_ca_file: str = ""
    sns_timeout_seconds: float = 5.0
    sns_cert_cache_seconds: float = 3600.0
    delivery_id_ttl_seconds: int = 86400

    # dashboard
    dashboard_session_ttl_seconds: int = 12 * 3600
    # portal links: how long the session a link opens lasts, and who may frame its pages
    # (CSP frame-ancestors sources, space-separated; empty: nobody, as every other page)
    portal_session_ttl_seconds: int = 3600
    portal_frame_ancestors: str = ""

    # lifecycle
    approval_ttl_seconds: int = 1800
    approval_sweep_seconds: float = 5.0

    # retention
    retention_days: float = 30.0
    retention_sweep_seconds: float = 3600.0
    retention_batch_size: int = 500
    # after each full batch the purge rests this many times as long as the batch took (0: back
    # to back), so a long purge leaves the hot path most of the writer and the CPU
    retention_pause_ratio: float = 1.0

    @field_validator("default_plan")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        if value not in PLAN_LIMITS:
            raise ValueError(f"unknown plan {value!r}; expected one of {', '.join(PLAN_LIMITS)}")
        return value

    @field_validator("portal_frame_ancestors")
    @classmethod
    def _frame_sources(cls, value: str) -> str:
        for source in value.split():
            if not FRAME_SOURCE.fullmatch(source):
                raise ValueError(
                    f"{source!r} is not a frame-ancestors source: give origins such as "
                    "https://app.example.com or https://*.example.com, or 'self'"
                )
        return " ".join(value.split())

    @field_validator("portal_session_ttl_seconds")
    @classmethod
    def _portal_ttl(cls, value: int) -> int:
        if not 60 <= value <= 86400:
            raise ValueError("portal_session_ttl_seconds: between 60 and 86400")
        return value

    @field_validator("retention_batch_size")
    @classmethod
    def _retention_batch(cls, value: int) -> int:
        if value < 1:
            raise ValueError("retention_batch_size: at least 1 (a batch must purge something)")
        return value

    @field_validator("retention_pause_ratio")
    @classmethod
    def _retention_pause(cls, value: float) -> float:
        if not 0 <= value <= 100:
            raise ValueError("retention_pause_ratio: between 0 and 100")
        return value

    @field_validator("log_format")
    @classmethod
    def _known_log_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("text", "json"):
            raise ValueError(f"unknown log format {value!r}; expected text or json")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        trusted_proxies(value)
        return value

    @field_validator("webhook_proxy")
    @classmethod
    def _webhook_proxy(cls, value: str) -> str:
        if value.strip():
            parts = urlsplit(value.strip())
            try:
                port = parts.port
            except ValueError as exc:
                raise ValueError(f"webhook proxy: {exc}") from exc
            if parts.scheme != "http" or not parts.hostname or port is None:
                raise ValueError("the webhook proxy must be http://[user:password@]host:port")
        return value

    @model_validator(mode="after")
    def _jwks_url_is_https(self) -> Settings:
        if self.jwks_url:
            check_jwks_url(self.jwks_url, self.jwks_allow_http)
        return self

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql", "postgres:"))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "causeflow.db"

    @property
    def workers_in_process(self) -> bool:
        if self.run_workers is not None:
            return self.run_workers
        return not self.is_postgres

    @property
    def trusted_proxies(self) -> list[str]:
        """`forwarded_allow_ips` as uvicorn's `forwarded_allow_ips` list ([] = trust none)."""
        return trusted_proxies(self.forwarded_allow_ips)

    def plan_limit(self, plan: str) -> int:
        """Requests per minute for a plan; 0 means no limit."""
        if self.rate_limit_per_minute is not None:
            return self.rate_limit_per_minute
        return PLAN_LIMITS.get(plan, PLAN_LIMITS[self.default_plan])


__all__ = ["PLAN_LIMITS", "Settings", "Field"]


def check_jwks_url(url: str, allow_http: bool) -> None:
    """A JWKS URL must be https (plain http only when the configuration allows it)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in ("https", "http"):
        raise ValueError(f"CAUSEFLOW_JWKS_URL must be an https:// URL, not {url!r}")
    if scheme == "http" and not allow_http:
        raise ValueError(
            "CAUSEFLOW_JWKS_URL must be https:// (set CAUSEFLOW_JWKS_ALLOW_HTTP=true to allow"
            " plain http, e.g. for a local identity provider)"
        )


def trusted_proxies(text: str) -> list[str]:
    """The comma-separated proxy addresses of CAUSEFLOW_FORWARDED_ALLOW_IPS, checked.

    Each entry is an IP address or a network (`10.0.0.0/8`, host bits zero), or the list is `*`
    alone. uvicorn would take anything else as a literal that never matches a peer, so a typo
    would silently trust no proxy: refuse it here instead.
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items == ["*"]:
        return items
    for item in items:
        try:
            if "/" in item:
                ipaddress.ip_network(item)
            else:
                ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(
                f"CAUSEFLOW_FORWARDED_ALLOW_IPS: {item!r} is not an IP address or network "
                "(e.g. 127.0.0.1,10.0.0.0/8; `*` alone trusts every peer)"
            ) from None
    return items
