"""Typed dependencies shared by every router: the services of the app and the caller.

Routes declare what they need by type (FastAPI's ``Annotated[..., Depends(...)]``)::

    @router.get("/{task_id}")
    async def get_task(task_id: uuid.UUID, tenant_id: Tenant, tasks: TasksDep) -> Task: ...

``Tenant`` is the caller's tenant (401 without a valid credential); ``Caller`` the whole
:class:`~processgpt.db.api_keys.Principal`; ``AdminCaller`` / ``OperatorCaller`` also require
that role (403 ``forbidden`` otherwise). The credential is read from ``Authorization: Bearer``
or ``X-API-Key``, declared as OpenAPI security schemes (so ``/docs`` "Authorize" takes
either), never as operation parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from processgpt import tracing
from processgpt.api.auth import Authenticator, presented_credential
from processgpt.api.services import Services
from processgpt.config import Settings
from processgpt.db.agents import AgentRepository
from processgpt.db.api_keys import ApiKeyRepository, Principal
from processgpt.db.hub import EventHub
from processgpt.db.mcp_servers import McpServerRepository
from processgpt.db.notifications import NotificationRepository
from processgpt.db.process_definitions import ProcessDefinitionRepository
from processgpt.db.processes import ProcessRepository
from processgpt.db.schedules import ScheduleRepository
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.db.tenants import TenantRepository
from processgpt.db.webhooks import WebhookRepository
from processgpt.db.workers import ServedAgents, WorkerRegistry
from processgpt.domain.errors import Forbidden, InvalidInput
from processgpt.domain.roles import Role
from processgpt.files.service import FileService
from processgpt.runtime.process_service import ProcessService

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`pgpt_…`) or a JWT: `Authorization: Bearer <credential>`.",
)
_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="An API key (`pgpt_…`) in the `X-API-Key` header.",
)


def services_of(connection: HTTPConnection) -> Services:
    """The app's services (HTTP requests and WebSockets alike)."""
    services: Services = connection.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services_of)]


def _service(name: str) -> Callable[[HTTPConnection], Any]:
    """A dependency returning the service ``name`` of :class:`Services`."""

    def service(connection: HTTPConnection) -> Any:
        return getattr(services_of(connection), name)

    service.__name__ = f"{name}_service"
    return service


TasksDep = Annotated[TaskRepository, Depends(_service("tasks"))]
ProcessesDep = Annotated[ProcessRepository, Depends(_service("processes"))]
ProcessServiceDep = Annotated[ProcessService, Depends(_service("process_service"))]
ProcessDefinitionsDep = Annotated[
    ProcessDefinitionRepository, Depends(_service("process_definitions"))
]
SchedulesDep = Annotated[ScheduleRepository, Depends(_service("schedules"))]
AgentsDep = Annotated[AgentRepository, Depends(_service("agents"))]
McpServersDep = Annotated[McpServerRepository, Depends(_service("mcp_servers"))]
KeysDep = Annotated[ApiKeyRepository, Depends(_service("keys"))]
TenantsDep = Annotated[TenantRepository, Depends(_service("tenants"))]
WebhooksDep = Annotated[WebhookRepository, Depends(_service("webhooks"))]
NotificationsDep = Annotated[NotificationRepository, Depends(_service("notifications"))]
HubDep = Annotated[EventHub, Depends(_service("hub"))]
GateDep = Annotated[PendingGate, Depends(_service("pending_gate"))]
SettingsDep = Annotated[Settings, Depends(_service("settings"))]
AuthenticatorDep = Annotated[Authenticator, Depends(_service("auth"))]
FilesDep = Annotated[FileService, Depends(_service("files"))]
WorkersDep = Annotated[WorkerRegistry, Depends(_service("workers"))]
ServedDep = Annotated[ServedAgents, Depends(_service("served"))]


async def caller(
    request: Request,
    auth: AuthenticatorDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The caller (401 ``unauthorized`` without a valid key or token)."""
    authorization = f"Bearer {bearer.credentials}" if bearer is not None else None
    credential = presented_credential(authorization, api_key)
    return await auth.authenticate(credential, scope=request.scope)


Caller = Annotated[Principal, Depends(caller)]
"""The caller: its tenant and role."""


async def _tenant(principal: Caller) -> str:
    return principal.tenant_id


Tenant = Annotated[str, Depends(_tenant)]
"""The caller's tenant (every member of it may use the route)."""


def _requires(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Caller) -> Principal:
        if not principal.role.allows(role):
            raise Forbidden(
                f"this needs the {role.value} role (the credential is a {principal.role.value})"
            )
        return principal

    return check


AdminCaller = Annotated[Principal, Depends(_requires(Role.ADMIN))]
"""A tenant admin (or an operator) of the caller's tenant."""
OperatorCaller = Annotated[Principal, Depends(_requires(Role.OPERATOR))]
"""An operator of the deployment."""


def idempotency_key_of(field: str | None, header: str | None) -> str | None:
    """The request's idempotency key: the body's ``idempotency_key`` field or the
    ``Idempotency-Key`` header (422 ``invalid_input`` when both are given and differ)."""
    if field is not None and header is not None and field != header:
        raise InvalidInput(
            "the Idempotency-Key header and idempotency_key differ", field="idempotency_key"
        )
    return field if field is not None else header


def _caller_trace(
    traceparent: Annotated[
        str | None,
        Header(
            max_length=100,
            description="W3C trace context: stored with the work the request creates; the "
            "worker's span for running it links to it. An invalid value is ignored.",
        ),
    ] = None,
    tracestate: Annotated[
        str | None,
        Header(max_length=1000, description="W3C trace state, kept with `traceparent`."),
    ] = None,
) -> tracing.TraceContext:
    return tracing.incoming(traceparent, tracestate)


CallerTrace = Annotated[tracing.TraceContext, Depends(_caller_trace)]
"""The caller's W3C trace context headers, checked (``(None, None)`` when absent or invalid)."""
