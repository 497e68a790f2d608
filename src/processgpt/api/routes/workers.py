"""``/v1/workers``: the worker processes of the deployment, live and lost (operators only)."""

from __future__ import annotations

from fastapi import APIRouter

from processgpt.api.deps import OperatorCaller, WorkersDep
from processgpt.api.errors import AUTHENTICATED, responses
from processgpt.protocols.views import WorkerView

router = APIRouter(prefix="/v1/workers", tags=["operator"], responses=responses(*AUTHENTICATED))


@router.get("", responses=responses(403))
async def list_workers(_operator: OperatorCaller, workers: WorkersDep) -> list[WorkerView]:
    """Every worker process registered in the database, the live first. Workers serve every
    tenant, and their hosts and process ids describe the deployment: the operator role only
    (a tenant sees whether its agents are served in `GET /v1/orchestrators` and in the
    `warnings` of its tasks)."""
    return [WorkerView.model_validate(row) for row in await workers.list()]
