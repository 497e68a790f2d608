"""``/metrics`` (Prometheus, no key: aggregates only) and ``/v1/metrics/summary`` (the
caller's tenant, for the console).

``/metrics`` is unauthenticated because scrapers carry no API key. What it shows is chosen for
that: counters, histograms and gauges labelled only by agent (an orchestrator a worker
registered; other names count as ``_unregistered``), outcome and status; never a tenant, task,
instance or user id, nor any content. ``PROCESSGPT_METRICS_ON_API=false`` turns it off (404),
e.g. when only a private network should reach it: run the workers' listeners
(``PROCESSGPT_METRICS_PORT``) instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from processgpt.api.deps import ServicesDep, Tenant
from processgpt.api.errors import AUTHENTICATED, error_response, responses
from processgpt.metrics import CONTENT_TYPE, exposition
from processgpt.protocols.metrics_summary import (
    AgentQueue,
    AgentTimings,
    MetricsSummary,
    Percentiles,
)

router = APIRouter(tags=["operations"])

SUMMARY_SAMPLE_LIMIT = 10_000
"""The summary's timings read at most the tenant's newest this many tasks of the window."""


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """The process's metrics in the Prometheus text format."""
    if not services.settings.metrics_on_api:
        return error_response("not_found", "/metrics is off (PROCESSGPT_METRICS_ON_API)", 404)
    return Response(exposition(), media_type=CONTENT_TYPE)


@router.get("/v1/metrics/summary", responses=responses(*AUTHENTICATED, 422))
async def summary(
    tenant_id: Tenant,
    services: ServicesDep,
    window_seconds: Annotated[
        float, Query(gt=0, le=30 * 86400, description="How far back timings look, seconds.")
    ] = 3600.0,
) -> MetricsSummary:
    """The caller's tenant: open tasks by agent, and wait and run percentiles of its tasks
    created within `window_seconds` that have ended."""
    queue: dict[str, dict[str, float | int | None]] = {}
    for row in await services.metrics.tenant_queue(tenant_id):
        entry = queue.setdefault(
            row["agent"],
            {"pending": 0, "in_progress": 0, "input_required": 0, "oldest": None},
        )
        entry[row["status"].lower()] = row["n"]
        if row["oldest"] is not None:
            entry["oldest"] = row["oldest"]
    timings = await services.metrics.tenant_timings(tenant_id, window_seconds, SUMMARY_SAMPLE_LIMIT)
    return MetricsSummary(
        window_seconds=window_seconds,
        sample_limit=SUMMARY_SAMPLE_LIMIT,
        queue=[
            AgentQueue(
                agent=agent,
                pending=int(e["pending"] or 0),
                in_progress=int(e["in_progress"] or 0),
                input_required=int(e["input_required"] or 0),
                oldest_pending_seconds=e["oldest"],
            )
            for agent, e in sorted(queue.items())
        ],
        timings=[
            AgentTimings(
                agent=t["agent"],
                ended=t["n"],
                done=t["done"],
                failed=t["failed"],
                cancelled=t["cancelled"],
                wait=_percentiles(t["wait"]),
                run=_percentiles(t["run"]),
            )
            for t in sorted(timings, key=lambda t: str(t["agent"]))
        ],
    )


def _percentiles(values: list[float]) -> Percentiles:
    p50, p90, p99 = values
    return Percentiles(p50=p50, p90=p90, p99=p99)
