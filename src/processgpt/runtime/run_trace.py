"""A worker's run of a task as a span: ``task.run``, in a trace of its own, linked to the trace
context stored with the task, or, for a process's task that carries none, to the one stored
with its instance (the request or schedule tick that started it; see
:mod:`processgpt.tracing`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from processgpt import logs, tracing
from processgpt.domain.errors import DatabaseUnavailable
from processgpt.runtime.attempt import RunResult
from processgpt.runtime.run import TaskRun

log = logging.getLogger(__name__)

Ran = tuple[RunResult | None, Exception | None]
"""How a run ended: its result, or the error that ended it (both None: it was stopped)."""


InstanceTrace = Callable[[uuid.UUID], Awaitable[tracing.TraceContext]]
"""Reads the trace context stored with a process instance (or its nearest ancestor)."""


async def traced_run(
    run: TaskRun, go: Callable[[], Awaitable[Ran]], instance_trace: InstanceTrace
) -> Ran:
    """Await ``go()`` (the run) inside its ``task.run`` span; JSON log lines written meanwhile
    carry the span's trace id. An error or a stop marks the span failed. Call only while
    tracing is on (the worker checks :func:`processgpt.tracing.enabled` first)."""
    claimed = run.claimed
    record = claimed.record
    attributes: dict[str, str | int] = {
        "processgpt.task_id": run.id_str,
        "processgpt.agent": claimed.agent_orch,
        "processgpt.tenant": claimed.tenant_id,
        "processgpt.attempt": claimed.attempts,
    }
    if claimed.proc_inst_id is not None:
        attributes["processgpt.instance_id"] = str(claimed.proc_inst_id)
    stored: tracing.TraceContext = (record["traceparent"], record["tracestate"])
    if stored[0] is None and claimed.proc_inst_id is not None:
        try:
            stored = await instance_trace(claimed.proc_inst_id)
        except DatabaseUnavailable as exc:
            # The link is observability: the run goes ahead unlinked rather than not at all
            # (its own writes meet the outage and are handled as every run's are).
            log.warning(
                "run not linked to its instance's trace task=%s error=%s",
                run.id_str,
                type(exc).__name__,
            )
    with tracing.task_span("task.run", stored, attributes) as span:
        logs.bind_task(run.id_str, claimed.proc_inst_id, tracing.current_trace_id())
        result, error = await go()
        if error is not None:
            tracing.failed(span, type(error).__name__)
        elif run.stop_reason is not None:
            tracing.failed(span, f"stopped:{run.stop_reason.name.lower()}")
    return result, error
