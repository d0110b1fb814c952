"""Successful and failed delivery attempts per hour, as a small inline SVG (pure, no I/O).

Built server-side from the subscription's statistics (`GET …/stats`): one stacked bar per
hour of the last day (succeeded below, failed above). Colours come from the stylesheet through
class names, and the SVG carries a title and description so it reads as text too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from causeflow.clock import parse_rfc3339

HOUR_MS = 3_600_000
WIDTH = 480
HEIGHT = 120
BASELINE = 100  # bars stand on this line; the axis labels sit below it


@dataclass(frozen=True)
class Buckets:
    start_ms: int
    succeeded: list[int]
    failed: list[int]

    @property
    def total_succeeded(self) -> int:
        return sum(self.succeeded)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


def buckets_from_series(series: dict[str, Any]) -> Buckets:
    """The bars of the API's statistics series (`GET …/stats`, `series.buckets`)."""
    bars = series.get("buckets") or []
    try:
        start = parse_rfc3339(str(bars[0]["start"])) if bars else 0
    except ValueError:
        start = 0
    succeeded = [int(b.get("succeeded") or 0) for b in bars]
    failed = [int(b.get("failed") or 0) for b in bars]
    return Buckets(start, succeeded, failed)


def delivery_chart(buckets: Buckets) -> Markup:
    hours = len(buckets.succeeded)
    peak = max([s + f for s, f in zip(buckets.succeeded, buckets.failed, strict=True)] + [1])
    slot = WIDTH / max(hours, 1)
    bar = max(1.0, slot - 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" preserveAspectRatio="none">',
        '<title id="chart-title">Delivery attempts per hour, last ' + str(hours) + " hours</title>",
        f'<desc id="chart-desc">{buckets.total_succeeded} succeeded and '
        f"{buckets.total_failed} failed; one bar per hour, oldest on the left.</desc>",
        f'<line class="chart-axis" x1="0" y1="{BASELINE}" x2="{WIDTH}" y2="{BASELINE}"/>',
    ]
    for i, (ok, bad) in enumerate(zip(buckets.succeeded, buckets.failed, strict=True)):
        x = round(i * slot + 1, 1)
        ok_h = round(ok / peak * (BASELINE - 4), 1)
        bad_h = round(bad / peak * (BASELINE - 4), 1)
        label = escape(f"hour {i - hours}: {ok} succeeded, {bad} failed")
        parts.append(f"<g><title>{label}</title>")
        if ok:
            parts.append(
                f'<rect class="chart-ok" x="{x}" y="{BASELINE - ok_h}" '
                f'width="{bar:.1f}" height="{ok_h}"/>'
            )
        if bad:
            parts.append(
                f'<rect class="chart-failed" x="{x}" y="{round(BASELINE - ok_h - bad_h, 1)}" '
                f'width="{bar:.1f}" height="{bad_h}"/>'
            )
        parts.append("</g>")
    parts.append(f'<text class="chart-label" x="0" y="{HEIGHT - 4}">-{hours} h</text>')
    parts.append(
        f'<text class="chart-label" x="{WIDTH}" y="{HEIGHT - 4}" text-anchor="end">now</text>'
    )
    parts.append("</svg>")
    # Only numbers and fixed words go in, and the one composed label is escaped above.
    return Markup("".join(parts))  # noqa: S704
