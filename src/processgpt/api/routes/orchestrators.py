"""``/v1/orchestrators``: the agents workers run, and whether a worker serves each now."""

from __future__ import annotations

from fastapi import APIRouter

from processgpt.api.deps import TasksDep, Tenant
from processgpt.api.errors import AUTHENTICATED, responses
from processgpt.protocols.views import OrchestratorView

router = APIRouter(prefix="/v1/orchestrators", tags=["agents"], responses=responses(*AUTHENTICATED))


@router.get("")
async def list_orchestrators(_tenant: Tenant, tasks: TasksDep) -> list[OrchestratorView]:
    """Every orchestrator a worker has registered. `online`: a worker serving it was seen in
    the last 30 seconds (a task for an orchestrator that is not online waits in the queue
    until a worker for it starts)."""
    return [OrchestratorView.model_validate(row) for row in await tasks.orchestrators()]
