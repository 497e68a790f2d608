"""Tracing with OpenTelemetry: off unless configured, and then one trace across the processes a
task goes through.

:func:`configure` (called by the composition root when ``PROCESSGPT_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; tests pass an in-memory exporter) turns it on. Until
then every function here is a check of one module global: no OpenTelemetry module is even
imported, so tracing costs nothing when it is off.

What is traced:

* the request that creates a task: ``POST /v1/tasks`` runs in a span whose parent is the
  caller's ``traceparent``; the task stores that span's W3C trace context
  (``todolist.traceparent`` / ``tracestate``). With tracing off the caller's own context is
  stored as it came, so a worker with tracing on still links to it;
* the worker's run of each attempt: a span (``task.run``) in a trace of its own, *linked* to
  the stored context (a task may wait for hours and be retried: its runs are not children of
  the request);
* inside a run: every LLM completion (``llm.chat``), MCP tool call (``mcp.tool_call``) and A2A
  call (``a2a.send_message``, which also sends ``traceparent`` to the remote agent) is a child
  span of the run.

Spans never carry task inputs, outputs, prompts or credentials: names, ids, counts and error
types only.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_MAX_TRACESTATE = 512

_tracer: Tracer | None = None
_provider: TracerProvider | None = None

TraceContext = tuple[str | None, str | None]
"""A W3C trace context as stored with a task: ``(traceparent, tracestate)``."""


def enabled() -> bool:
    return _tracer is not None


def configure(
    endpoint: str | None = None,
    *,
    service_name: str = "processgpt",
    exporter: SpanExporter | None = None,
) -> None:
    """Turn tracing on for this process: spans go in batches to the OTLP/HTTP collector at
    ``endpoint`` (its base URL: ``/v1/traces`` is added), or, with ``exporter``, to that
    exporter one by one (tests). Calling it again replaces the earlier configuration."""
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - only when tracing
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        SimpleSpanProcessor,
    )

    global _tracer, _provider  # noqa: PLW0603 - the process's one tracing configuration
    shutdown()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        otlp = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(otlp))
    else:
        raise ValueError("tracing needs an OTLP endpoint or an exporter")
    _provider = provider
    _tracer = provider.get_tracer("processgpt")


def shutdown() -> None:
    """Export what is buffered and turn tracing off (at exit; tests)."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        provider.shutdown()


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a well-formed W3C ``traceparent`` with non-zero ids, else None (an
    invalid one is ignored, as the W3C recommendation says)."""
    value = value.strip().lower() if value else ""
    if len(value) != 55:
        return None
    match = _TRACEPARENT.match(value)
    if match is None or value.startswith("ff") or not int(match[1], 16) or not int(match[2], 16):
        return None
    return value


def incoming(traceparent: str | None, tracestate: str | None) -> TraceContext:
    """A request's trace context headers, checked: an invalid ``traceparent`` drops both."""
    parent = valid_traceparent(traceparent)
    if parent is None:
        return None, None
    state = tracestate.strip() if tracestate else None
    if state and (len(state) > _MAX_TRACESTATE or not state.isascii() or not state.isprintable()):
        state = None
    return parent, state or None


def trace_id_of(traceparent: str | None) -> str | None:
    return traceparent[3:35] if traceparent else None


@contextlib.contextmanager
def request_span(name: str, context: TraceContext) -> Iterator[TraceContext]:
    """A server span for a request that creates work, child of the caller's ``context``;
    yields the trace context to store with that work (the caller's when tracing is off)."""
    tracer = _tracer
    if tracer is None:
        yield context
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    with tracer.start_as_current_span(name, context=_extract(context), kind=SpanKind.SERVER):
        yield current_context()


def current_context() -> TraceContext:
    """The current span's trace context (``(None, None)`` when off or outside a span)."""
    if _tracer is None:
        return None, None
    from opentelemetry.propagate import inject  # noqa: PLC0415

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


def outbound_headers() -> dict[str, str]:
    """Headers that carry the current trace to a remote service (empty when off)."""
    parent, state = current_context()
    if parent is None:
        return {}
    return {"traceparent": parent} | ({"tracestate": state} if state else {})


@contextlib.contextmanager
def task_span(
    name: str, context: TraceContext, attributes: Mapping[str, Any]
) -> Iterator[Span | None]:
    """The span of a worker's run of a task: a new trace, linked to the ``context`` stored
    with the task (the request that created it). Yields None when tracing is off."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import Link, SpanKind, get_current_span  # noqa: PLC0415

    links = []
    if context[0] is not None:
        linked = get_current_span(_extract(context)).get_span_context()
        if linked.is_valid:
            links.append(Link(linked))
    with tracer.start_as_current_span(
        name,
        context=_empty_context(),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=dict(attributes),
    ) as span:
        yield span


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, client: bool = False
) -> Iterator[Span | None]:
    """A child span of the current one (``client``: a call to another service). An exception
    leaving the block is recorded on it. Yields None when tracing is off."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415

    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    with tracer.start_as_current_span(name, kind=kind, attributes=dict(attributes or {})) as s:
        yield s


def failed(span: Span | None, error_type: str) -> None:
    """Mark ``span`` failed without an exception (an error returned, not raised)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))


def current_trace_id() -> str | None:
    """The current span's trace id (hex), if tracing is on and a span is current."""
    if _tracer is None:
        return None
    from opentelemetry.trace import get_current_span  # noqa: PLC0415

    ctx = get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _extract(context: TraceContext) -> Any:
    from opentelemetry.propagate import extract  # noqa: PLC0415

    parent, state = context
    carrier = {"traceparent": parent} if parent else {}
    if parent and state:
        carrier["tracestate"] = state
    return extract(carrier)


def _empty_context() -> Any:
    from opentelemetry.context import Context  # noqa: PLC0415

    return Context()
