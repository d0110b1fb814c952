"""The service's spans, and the W3C trace context that travels with an event.

Every helper is a no-op while no tracer is installed (`install`, called by `setup.configure`
when the `OTEL_*` variables ask for traces): the context managers yield `NOOP`, whose
`traceparent` is None, and nothing imports or calls OpenTelemetry. The `opentelemetry`
packages (the `otel` extra) are imported only if present.

The chain of one alert: the HTTP request's server span > `ingest.apply` (the incident it opened
or updated) > `event.append` (whose traceparent is stored with the event) > one
`webhook.attempt` span per attempt, a child of the event's span, whose own context goes out as
the `traceparent` header. A stream writing an event's frame makes a `stream.send` span linked to
the event's span.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

from causeflow import __version__

try:  # the `otel` extra
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.status import Status, StatusCode
except ImportError:  # pragma: no cover - exercised only where the extra is absent
    _trace = None  # type: ignore[assignment]

# Events whose stored traceparent a delivery engine keeps, to parent its attempts' spans.
PARENTS_KEPT = 16384
MAX_TRACESTATE = 512  # characters of a caller's tracestate kept (W3C: at least 512 kept)
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

_tracer: Any = None
_provider: Any = None
_parents: OrderedDict[str, str] = OrderedDict()


def install(provider: Any) -> None:
    """Trace through `provider` (an SDK `TracerProvider`) from now on."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("causeflow", __version__)


def uninstall() -> None:
    """Stop tracing (tests); the provider is not shut down."""
    global _tracer, _provider
    _tracer = _provider = None
    _parents.clear()


def enabled() -> bool:
    return _tracer is not None


def shutdown() -> None:
    """Export what is buffered and stop (the process is ending)."""
    provider = _provider
    uninstall()
    if provider is not None:
        provider.shutdown()


class Handle:
    """A span that may be absent (`NOOP`): every method is safe either way."""

    __slots__ = ("span",)

    def __init__(self, span: Any) -> None:
        self.span = span

    # `NOOP` is its own context manager: with tracing off a `with` costs two calls, no more.
    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def traceparent(self) -> str | None:
        return None if self.span is None else traceparent_of(self.span.get_span_context())

    def set(self, key: str, value: Any) -> None:
        if self.span is not None and value is not None:
            self.span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        if self.span is not None:
            self.span.update_name(name)

    def fail(self, description: str) -> None:
        if self.span is not None:
            self.span.set_status(Status(StatusCode.ERROR, description))

    def answered(self, status: int | None, error: str | None) -> None:
        """An outgoing request's answer: its status code, or the error that stood for one."""
        if self.span is None:
            return
        if status is not None:
            self.span.set_attribute("http.response.status_code", status)
        if error or status is None or status >= 400:
            self.fail(error or f"HTTP {status}")

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Add `traceparent` (and `tracestate`, if any) for a receiver to join the trace."""
        if self.span is None:
            return
        context = self.span.get_span_context()
        headers["traceparent"] = traceparent_of(context)
        state = context.trace_state.to_header() if context.trace_state else ""
        if state:
            headers["tracestate"] = state


NOOP = Handle(None)


def traceparent_of(context: Any) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def span_context(traceparent: str | None, tracestate: str | None = None) -> Any:
    """The remote span context a `traceparent` header names; None if it is not one."""
    if not traceparent or _trace is None:
        return None
    found = _TRACEPARENT.match(traceparent.strip().lower())
    if found is None:
        return None
    trace_id, span_id = int(found[1], 16), int(found[2], 16)
    if not trace_id or not span_id:
        return None
    state = None
    if tracestate and len(tracestate) <= MAX_TRACESTATE:  # longer: dropped, as W3C allows
        from opentelemetry.trace.span import TraceState

        state = TraceState.from_header([tracestate])
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=TraceFlags(int(found[3], 16)),
        trace_state=state,
    )


def _parent(traceparent: str | None, tracestate: str | None = None) -> Any:
    """An OpenTelemetry context whose parent is `traceparent`; None (the current one) if it
    names none."""
    remote = span_context(traceparent, tracestate)
    return None if remote is None else _trace.set_span_in_context(NonRecordingSpan(remote))


def current_traceparent() -> str | None:
    """The traceparent of the current span (the request's), or None (no tracing, no span)."""
    if _tracer is None:
        return None
    context = _trace.get_current_span().get_span_context()
    return traceparent_of(context) if context.is_valid else None


def server_span(method: str, headers: Mapping[str, str]) -> AbstractContextManager[Handle]:
    """An inbound HTTP request's span, continuing the caller's `traceparent` if it sent one."""
    return NOOP if _tracer is None else _server_span(method, headers)


@contextlib.contextmanager
def _server_span(method: str, headers: Mapping[str, str]) -> Iterator[Handle]:
    parent = _parent(headers.get("traceparent"), headers.get("tracestate"))
    with _tracer.start_as_current_span(
        method,
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method},
        set_status_on_exception=True,
    ) as span:
        yield Handle(span)


def span(
    name: str, parent: str | None = None, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Handle]:
    """A span, current inside the block: a child of `parent` (a traceparent) or else of the
    current span."""
    return NOOP if _tracer is None else _span(name, parent, attributes)


@contextlib.contextmanager
def _span(name: str, parent: str | None, attributes: Mapping[str, Any] | None) -> Iterator[Handle]:
    with _tracer.start_as_current_span(
        name, context=_parent(parent), attributes=dict(attributes or {})
    ) as opened:
        yield Handle(opened)


def event_appended(parent: str | None, attributes: Mapping[str, Any]) -> str | None:
    """An `event.append` span (a child of `parent`, else of the current span), ended at once;
    its traceparent, to store with the event. None while tracing is off."""
    if _tracer is None:
        return None
    opened = _tracer.start_span("event.append", context=_parent(parent), attributes=attributes)
    opened.end()
    return traceparent_of(opened.get_span_context())


def remember(event_id: str, traceparent: str | None) -> None:
    """Keep an event's stored traceparent for the attempts to deliver it (tracing on only)."""
    if _tracer is None or not traceparent:
        return
    _parents[event_id] = traceparent
    _parents.move_to_end(event_id)
    while len(_parents) > PARENTS_KEPT:
        _parents.popitem(last=False)


def remember_all(found: Mapping[str, str | None]) -> None:
    for event_id, traceparent in found.items():
        remember(event_id, traceparent)


def attempt(
    event_id: str, *, delivery_id: str, subscription_id: str, attempt_number: int
) -> AbstractContextManager[Handle]:
    """One delivery attempt's span: a child of the event's stored span when it is known (a new
    trace otherwise). Inject its context into the request's headers with `Handle.inject`, and
    say how it went with `Handle.answered`."""
    if _tracer is None:
        return NOOP
    return _attempt(event_id, delivery_id, subscription_id, attempt_number)


@contextlib.contextmanager
def _attempt(
    event_id: str, delivery_id: str, subscription_id: str, attempt_number: int
) -> Iterator[Handle]:
    with _tracer.start_as_current_span(
        "webhook.attempt",
        context=_parent(_parents.get(event_id)),
        kind=SpanKind.CLIENT,
        attributes={
            "causeflow.event.id": event_id,
            "causeflow.delivery.id": delivery_id,
            "causeflow.subscription.id": subscription_id,
            "causeflow.delivery.attempt": attempt_number,
        },
    ) as opened:
        yield Handle(opened)


def frames_sent(sent: Iterable[tuple[str, str, str | None, int]]) -> None:
    """A `stream.send` span for each event a stream feed wrote, linked to the event's span:
    (event id, type, stored traceparent, how many streams got its frame)."""
    if _tracer is None:
        return
    for event_id, event_type, traceparent, streams in sent:
        remote = span_context(traceparent)
        opened = _tracer.start_span(
            "stream.send",
            kind=SpanKind.PRODUCER,
            links=[Link(remote)] if remote is not None else None,
            attributes={
                "causeflow.event.id": event_id,
                "causeflow.event.type": event_type,
                "causeflow.stream.count": streams,
            },
        )
        opened.end()
