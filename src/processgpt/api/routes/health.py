"""Probes: ``/livez`` (the process answers; no database), ``/healthz`` (the same, kept for
existing checks) and ``/readyz`` (it can serve: database and LISTEN).

A liveness probe must not depend on the database: during a database outage every API process
answers 503 (``/readyz`` and the API alike) and recovers by itself, and restarting them all
would only add a cold start to the outage."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from processgpt.api.deps import ServicesDep
from processgpt.api.errors import error_response, responses
from processgpt.domain.errors import DatabaseUnavailable

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> dict[str, str]:
    """Always `{"status": "ok"}` while the process's event loop serves requests; touches
    nothing else (no database, no LISTEN connection), so it stays 200 through a database
    outage. For a Kubernetes liveness probe."""
    return {"status": "ok"}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Always `{"status": "ok"}` while the process serves requests (the same as `/livez`)."""
    return {"status": "ok"}


@router.get("/readyz", responses=responses(503))
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when the database answers and live streams are being fed (the LISTEN
    connection is up); otherwise 503 `not_ready`."""
    try:
        await services.db.ping()
    except DatabaseUnavailable:
        return error_response("not_ready", "the database does not answer", 503)
    if not services.hub.listener.connected.is_set():  # live streams would fall back to polls
        return error_response("not_ready", "not listening for events yet", 503)
    return JSONResponse({"status": "ready"})
