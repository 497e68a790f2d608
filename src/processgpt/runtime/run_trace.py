"""A worker's run of a task as a span: ``task.run``, in a trace of its own, linked to the trace
context stored with the task (see :mod:`processgpt.tracing`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from processgpt import logs, tracing
from processgpt.runtime.attempt import RunResult
from processgpt.runtime.run import TaskRun

Ran = tuple[RunResult | None, Exception | None]
"""How a run ended: its result, or the error that ended it (both None: it was stopped)."""


async def traced_run(run: TaskRun, go: Callable[[], Awaitable[Ran]]) -> Ran:
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
    stored = (record["traceparent"], record["tracestate"])
    with tracing.task_span("task.run", stored, attributes) as span:
        logs.bind_task(run.id_str, claimed.proc_inst_id, tracing.current_trace_id())
        result, error = await go()
        if error is not None:
            tracing.failed(span, type(error).__name__)
        elif run.stop_reason is not None:
            tracing.failed(span, f"stopped:{run.stop_reason.name.lower()}")
    return result, error
