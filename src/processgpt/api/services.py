"""What the API's routes work with, built once per app by :meth:`Services.build` and kept on
``app.state.services`` (routers reach it through :mod:`processgpt.api.deps`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from processgpt.agents import registry
from processgpt.api.a2a import A2AService
from processgpt.api.auth import Authenticator
from processgpt.api.chat import ChatSockets
from processgpt.api.credential_watch import CredentialWatch
from processgpt.config import (
    FileSettings,
    McpSettings,
    MemorySettings,
    ProcessSettings,
    SecretSettings,
    Settings,
    WebhookSettings,
)
from processgpt.db.agents import AgentRepository
from processgpt.db.api_keys import REVOCATIONS_CHANNEL, ApiKeyRepository
from processgpt.db.chats import ChatClientLocks, ChatRepository
from processgpt.db.database import Database
from processgpt.db.embedded import default_data_dir
from processgpt.db.hub import EventHub
from processgpt.db.mcp_servers import McpServerRepository
from processgpt.db.metrics import MetricsRepository
from processgpt.db.notifications import NotificationRepository
from processgpt.db.process_definitions import ProcessDefinitionRepository
from processgpt.db.processes import ProcessRepository
from processgpt.db.schedules import ScheduleRepository
from processgpt.db.secret_box import SecretBox
from processgpt.db.tasks import PendingGate, TaskRepository
from processgpt.db.tenants import TenantRepository
from processgpt.db.webhooks import WebhookRepository
from processgpt.db.workers import ServedAgents, WorkerRegistry
from processgpt.files.service import FileService
from processgpt.memory.configured import memory_service
from processgpt.memory.service import MemoryService
from processgpt.runtime.metrics_snapshot import snapshot_refresh
from processgpt.runtime.process_service import ProcessService
from processgpt.tools.netguard import NetworkPolicy


@dataclass(frozen=True, eq=False)
class Services:
    settings: Settings
    db: Database
    hub: EventHub
    """One LISTEN connection per API process; every live stream follows through it."""
    auth: Authenticator
    watch: CredentialWatch
    """Ends the streams whose key is revoked or whose token expires."""
    known_agents: frozenset[str]
    """The built-in orchestrators (other names are looked up in the database)."""
    tasks: TaskRepository
    processes: ProcessRepository
    """Instances of the one-task form, and the rows and tasks of any instance."""
    process_service: ProcessService
    """Instances of published definitions: start, read, advance (one transaction a step)."""
    process_definitions: ProcessDefinitionRepository
    schedules: ScheduleRepository
    agents: AgentRepository
    mcp_servers: McpServerRepository
    mcp_settings: McpSettings
    """The operator's MCP file (its tenant catalog is read from it at each request)."""
    mcp_policy: NetworkPolicy
    """What tenants' MCP server URLs may reach."""
    keys: ApiKeyRepository
    tenants: TenantRepository
    chats: ChatRepository
    chat_sockets: ChatSockets
    pending_gate: PendingGate
    """Per-tenant backpressure, shared by every route that creates tasks."""
    a2a: A2AService
    files: FileService
    """Files: bytes in the configured storage, metadata in ``files``, signed links."""
    workers: WorkerRegistry
    served: ServedAgents
    """Whether a live worker serves an agent (the ``warnings`` of new and pending tasks)."""
    webhooks: WebhookRepository
    webhook_policy: NetworkPolicy
    """What tenants' webhook URLs may reach (checked again at connect time by workers)."""
    notifications: NotificationRepository
    memory: MemoryService
    """Long-term memory (``/v1/memories``), with the embedder the composition root chose."""
    metrics: MetricsRepository
    """The deployment's metrics snapshot and tenants' summaries."""

    @classmethod
    def build(
        cls,
        db: Database,
        settings: Settings,
        *,
        mcp: McpSettings | None = None,
        secrets: SecretSettings | None = None,
        box: SecretBox | None = None,
        process: ProcessSettings | None = None,
        files: FileSettings | None = None,
        local_agents: frozenset[str] = frozenset(),
        webhooks: WebhookSettings | None = None,
        memory: MemoryService | None = None,
    ) -> Services:
        """``mcp`` and ``process`` (the agents of process steps the API's starts and
        completions create) default to the environment's; ``box`` (the process's keys, built
        by the composition root) to ``PROCESSGPT_SECRET_KEYS`` (``secrets``) or the key file
        in ``settings.data_dir``. ``local_agents``: the agents a worker in this same process
        serves (``processgpt up``), never reported unserved."""
        mcp = mcp or McpSettings()
        process = process or ProcessSettings()
        files = files or FileSettings()
        webhooks = webhooks or WebhookSettings()
        if box is None:
            secrets = secrets or SecretSettings()
            box = SecretBox.configured(
                secrets.keys.get_secret_value() if secrets.keys else None,
                settings.data_dir or secrets.data_dir,
            )
        hub = EventHub(db)
        tasks = TaskRepository(db)
        keys = ApiKeyRepository(db)
        auth = Authenticator(
            keys,
            jwt_secret=settings.jwt_secret,
            jwt_jwks_url=settings.jwt_jwks_url,
            jwt_audience=settings.jwt_audience,
        )
        watch = CredentialWatch(auth)
        known = frozenset(registry.available())
        gate = PendingGate(tasks, settings.max_pending_tasks)
        workers = WorkerRegistry(db)
        served = ServedAgents(workers, local=local_agents)

        def key_revoked(prefix: str) -> None:
            auth.forget_keys()
            watch.key_revoked(prefix)

        def listener_reconnected() -> None:  # revocations may have been missed meanwhile
            auth.forget_keys()
            watch.recheck_all()

        hub.listener.subscribe(REVOCATIONS_CHANNEL, key_revoked)
        hub.listener.on_reconnect(listener_reconnected)
        return cls(
            settings=settings,
            db=db,
            hub=hub,
            auth=auth,
            watch=watch,
            known_agents=known,
            tasks=tasks,
            processes=ProcessRepository(db),
            process_service=ProcessService(
                db, judge_agent=process.judge_agent, default_agent=process.default_agent
            ),
            process_definitions=ProcessDefinitionRepository(db),
            schedules=ScheduleRepository(db),
            agents=AgentRepository(db, known_orchestrators=known),
            mcp_servers=McpServerRepository(db, box, max_servers=mcp.max_servers_per_tenant),
            mcp_settings=mcp,
            mcp_policy=NetworkPolicy.parse(mcp.allow_private_networks, mcp.allowed_networks),
            keys=keys,
            tenants=TenantRepository(db),
            chats=ChatRepository(db, gate, known_agents=known),
            chat_sockets=ChatSockets(ChatClientLocks(db.dsn)),
            pending_gate=gate,
            a2a=A2AService(tasks, hub, known, gate, served),
            files=FileService.configured(db, files, settings.data_dir or default_data_dir(), box),
            webhooks=WebhookRepository(
                db,
                box,
                max_per_tenant=webhooks.max_per_tenant,
                rotation_overlap=webhooks.rotation_overlap,
            ),
            webhook_policy=NetworkPolicy(allow_private=webhooks.allow_private),
            notifications=NotificationRepository(db),
            memory=memory or memory_service(db, MemorySettings()),
            metrics=MetricsRepository(db, known),
            workers=workers,
            served=served,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The app's lifespan: the event hub (and, when the API serves ``/metrics``, the
        metrics snapshot loop) runs while the app serves; on the way out chat clients hear
        ``GRACEFUL_DISCONNECT``, then the hub and the watch stop."""
        hub = asyncio.create_task(self.hub.run(), name="event-hub")
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.settings.metrics_on_api:
                    await stack.enter_async_context(
                        snapshot_refresh(self.metrics, self.settings.metrics_interval)
                    )
                yield
        finally:
            await self.chat_sockets.shutdown()
            hub.cancel()
            await asyncio.gather(hub, return_exceptions=True)
            await self.watch.aclose()
