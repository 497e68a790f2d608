"""The JSON summary of a tenant's queue and timings (``GET /v1/metrics/summary``), defined
once for the server and the console."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Percentiles(BaseModel):
    p50: float = Field(description="Median, seconds.")
    p90: float = Field(description="90th percentile, seconds.")
    p99: float = Field(description="99th percentile, seconds.")


class AgentQueue(BaseModel):
    agent: str
    pending: int = Field(description="PENDING tasks (waiting for a retry's backoff included).")
    in_progress: int = Field(description="Tasks a worker is running now.")
    input_required: int = Field(description="Tasks waiting for a person's answer.")
    oldest_pending_seconds: float | None = Field(
        description="How long the oldest claimable PENDING task has waited (null: none)."
    )


class AgentTimings(BaseModel):
    agent: str
    ended: int = Field(description="Tasks of the window that ended.")
    done: int
    failed: int
    cancelled: int
    wait: Percentiles = Field(description="Created → first claimed.")
    run: Percentiles = Field(description="First claimed → ended (retries included).")


class MetricsSummary(BaseModel):
    """The caller's tenant only: its open tasks by agent now, and the wait and run times of
    its tasks created within the last ``window_seconds`` that have ended (at most the newest
    ``sample_limit`` of them)."""

    window_seconds: float
    sample_limit: int
    queue: list[AgentQueue]
    timings: list[AgentTimings]
