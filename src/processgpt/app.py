"""The composition root: opening the database (embedded or not) and wiring the Python API
and the agent server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any

from processgpt.agents import registry
from processgpt.agents.lessons import LlmLessonExtractor
from processgpt.agents.task_runner import A2ATaskRunner
from processgpt.config import (
    FileSettings,
    LlmSettings,
    McpSettings,
    MemorySettings,
    ProcessSettings,
    SecretSettings,
    Settings,
    WebhookSettings,
)
from processgpt.db.database import Database, redact_dsn
from processgpt.db.embedded import EmbeddedPostgres, default_data_dir
from processgpt.db.follow import follow_task
from processgpt.db.memory_feedback import FeedbackQueue
from processgpt.db.metrics import MetricsRepository
from processgpt.db.migrate import migrate
from processgpt.db.process_steps import StepSettings
from processgpt.db.secret_box import SecretBox
from processgpt.db.tasks import TaskRepository
from processgpt.db.webhooks import WebhookRepository
from processgpt.domain.errors import InvalidConfiguration
from processgpt.domain.events import Event
from processgpt.domain.task import RetryPolicy, Task, TaskStatus, TaskSubmission
from processgpt.domain.webhooks import parse_schedule
from processgpt.files.service import FileService
from processgpt.memory.configured import memory_service
from processgpt.metrics import serve_metrics
from processgpt.runtime.learning import LearningLoop, LearningOptions
from processgpt.runtime.memory_context import MemoryContext
from processgpt.runtime.metrics_snapshot import snapshot_refresh
from processgpt.runtime.reembedding import ReembedLoop, ReembedOptions
from processgpt.runtime.retention import RetentionOptions
from processgpt.runtime.run import TaskRunner
from processgpt.runtime.serving import tune_gc_for_serving
from processgpt.runtime.webhook_delivery import DeliveryLoop
from processgpt.runtime.worker import Worker, WorkerOptions, default_consumer
from processgpt.tools.executor_view import ExecutorMcpView
from processgpt.tools.netguard import NetworkPolicy
from processgpt.tools.webhook_http import HttpSender

log = logging.getLogger(__name__)


async def open_database(
    settings: Settings, *, run_migrations: bool = True, pool_size: int | None = None
) -> tuple[Database, EmbeddedPostgres | None]:
    """Connect to ``DATABASE_URL``, or open the embedded Postgres when it is unset.

    An embedded server this call starts is stopped when the process exits normally (see
    :class:`~processgpt.db.embedded.EmbeddedPostgres`: only the process that started it stops
    it); a command run by :func:`run_command` also exits normally on SIGTERM."""
    embedded = None
    dsn = settings.database_url
    if not dsn:
        embedded = await asyncio.to_thread(EmbeddedPostgres, settings.data_dir)
        dsn = embedded.dsn
    db = await Database.connect(dsn, max_size=pool_size or settings.pool_size)
    try:
        log.info("database connected dsn=%s embedded=%s", redact_dsn(dsn), embedded is not None)
        if run_migrations:
            await migrate(db)
    except BaseException:  # a failed or cancelled migration: the caller gets no pool to close
        await db.close()
        raise
    return db, embedded


def secret_box(settings: Settings, secrets: SecretSettings | None = None) -> SecretBox:
    """The one :class:`SecretBox` of a process: ``PROCESSGPT_SECRET_KEYS`` when set, else the
    key file in the data directory ``settings`` name (``--data-dir``, then
    ``PROCESSGPT_DATA_DIR``, then the default), the same for its API and its workers."""
    secrets = secrets or SecretSettings()
    keys = secrets.keys.get_secret_value() if secrets.keys else None
    return SecretBox.configured(keys, settings.data_dir or secrets.data_dir)


def process_step_settings(process: ProcessSettings | None = None) -> StepSettings:
    """The agents of process steps (``PROCESSGPT_PROCESS_*``), for workers and the API."""
    process = process or ProcessSettings()
    return StepSettings(judge_agent=process.judge_agent, default_agent=process.default_agent)


def worker_memory(
    db: Database, llm: LlmSettings | None, memory: MemorySettings | None = None
) -> dict[str, Any]:
    """The memory of a worker's tasks, its learning step and re-embedding, as
    ``WorkerOptions`` fields: none with ``PROCESSGPT_MEMORY_EMBEDDER=none``; no learning step
    without a model endpoint (``llm``) or with ``PROCESSGPT_MEMORY_LEARNING=false``; no
    re-embedding with ``PROCESSGPT_MEMORY_REEMBED_BATCH=0``."""
    memory = memory or MemorySettings()
    if memory.embedder == "none":
        return {}
    service = memory_service(db, memory)
    fields: dict[str, Any] = {"memory": MemoryContext(service)}
    if memory.reembed_batch:
        fields["reembedding"] = ReembedLoop(
            service,
            ReembedOptions(batch=memory.reembed_batch, interval=memory.reembed_interval),
        )
    if memory.learning and llm is not None and llm.configured:
        extractor = LlmLessonExtractor(llm, model=memory.learning_agent_model)
        fields["learning"] = LearningLoop(
            FeedbackQueue(db),
            service,
            extractor,
            LearningOptions(
                consumer=default_consumer(),
                auto_activate=memory.auto_activate,
                lease_seconds=memory.learning_lease_seconds,
            ),
        )
    return fields


def retention_options(settings: Settings) -> RetentionOptions:
    """The retention job's options (``PROCESSGPT_RETENTION_*``), for workers and the CLI."""
    return RetentionOptions(
        default_days=settings.retention_days,
        interval=settings.retention_interval,
        batch=settings.retention_batch,
    )


def worker_options(settings: Settings, **overrides: Any) -> WorkerOptions:
    values: dict[str, Any] = {
        "process_steps": process_step_settings(),
        "concurrency": settings.concurrency,
        "lease_seconds": settings.lease_seconds,
        "poll_interval": settings.poll_interval,
        "agent_max_running": dict(settings.agent_max_running),
        "shutdown_grace": settings.shutdown_grace,
        "flush_interval": settings.flush_interval,
        "schedules": settings.schedules,
        "retention": retention_options(settings),
        "max_pending_tasks": settings.max_pending_tasks,
        "retry": RetryPolicy(
            base_delay=settings.retry_base_delay, max_delay=settings.retry_max_delay
        ),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return WorkerOptions(**values)


def webhook_delivery(
    box: SecretBox, webhooks: WebhookSettings | None = None
) -> Callable[[Database], DeliveryLoop] | None:
    """What makes a worker's webhook delivery loop (``PROCESSGPT_WEBHOOK_*``): HTTP with
    Standard Webhooks signatures, every connection checked against internal addresses. None
    when ``PROCESSGPT_WEBHOOK_DELIVER`` is off. :class:`InvalidConfiguration` for a retry
    schedule that is not one."""
    webhooks = webhooks or WebhookSettings()
    if not webhooks.deliver:
        return None
    try:
        schedule = parse_schedule(webhooks.retry_schedule)
    except ValueError as exc:
        raise InvalidConfiguration(f"PROCESSGPT_WEBHOOK_RETRY_SCHEDULE: {exc}") from None
    policy = NetworkPolicy(allow_private=webhooks.allow_private)
    settings = webhooks

    def make(db: Database) -> DeliveryLoop:
        return DeliveryLoop(
            WebhookRepository(db, box, max_per_tenant=settings.max_per_tenant),
            HttpSender(policy, timeout=settings.timeout),
            schedule,
            concurrency=settings.concurrency,
            per_endpoint=settings.endpoint_concurrency,
            per_tenant=settings.tenant_concurrency,
            lease_seconds=settings.lease_seconds,
        )

    return make


@contextlib.asynccontextmanager
async def worker_metrics(settings: Settings, db: Database) -> AsyncIterator[int | None]:
    """A worker process's ``/metrics`` listener while the block runs, when
    ``PROCESSGPT_METRICS_PORT`` is set (the block gets the port it listens on, else None),
    with the deployment gauges kept fresh from the database."""
    if not settings.metrics_port:
        yield None
        return
    server, thread = serve_metrics(settings.metrics_host, settings.metrics_port)
    try:
        log.info("metrics listening host=%s port=%d", settings.metrics_host, server.server_port)
        repository = MetricsRepository(db, frozenset(registry.available()))
        async with snapshot_refresh(repository, settings.metrics_interval):
            yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class ProcessGPT:
    """The Python API of the runtime: submit tasks, manage them, follow their events.

    ``async with await ProcessGPT.connect() as pg: task = await pg.submit("demo", "hi")``.
    """

    def __init__(
        self, db: Database, *, embedded: EmbeddedPostgres | None = None, tenant_id: str = "default"
    ) -> None:
        self.db = db
        self.tasks = TaskRepository(db)
        self.tenant_id = tenant_id
        self._embedded = embedded

    @classmethod
    async def connect(
        cls,
        database_url: str | None = None,
        *,
        tenant_id: str = "default",
        run_migrations: bool = True,
    ) -> ProcessGPT:
        settings = Settings()
        if database_url:
            settings = settings.model_copy(update={"database_url": database_url})
        db, embedded = await open_database(settings, run_migrations=run_migrations)
        return cls(db, embedded=embedded, tenant_id=tenant_id)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> ProcessGPT:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def submit(self, agent_orch: str, query: str = "", **fields: Any) -> Task:
        """Submit a task (see :class:`TaskSubmission` for the fields). With an
        ``idempotency_key`` already used, the earlier task is returned."""
        sub = TaskSubmission(agent_orch=agent_orch, query=query, **fields)
        task, _ = await self.tasks.submit(self.tenant_id, sub)
        return task

    async def get(self, task_id: uuid.UUID) -> Task:
        return await self.tasks.get(self.tenant_id, task_id)

    async def cancel(self, task_id: uuid.UUID) -> Task:
        return await self.tasks.cancel(self.tenant_id, task_id)

    async def requeue(self, task_id: uuid.UUID) -> Task:
        return await self.tasks.requeue(self.tenant_id, task_id)

    async def answer(self, task_id: uuid.UUID, answer: Any) -> Task:
        return await self.tasks.answer(self.tenant_id, task_id, answer)

    async def list_failed(self, limit: int = 50) -> list[Task]:
        """The dead letters: tasks that used up their attempts."""
        return await self.tasks.list_tasks(self.tenant_id, status=TaskStatus.FAILED, limit=limit)

    async def events(self, task_id: uuid.UUID, after: int = 0) -> list[Event]:
        return await self.tasks.events(self.tenant_id, task_id, after=after)

    def follow(self, task_id: uuid.UUID, after: int = 0) -> AsyncIterator[Event]:
        return follow_task(self.db, self.tenant_id, task_id, after=after)


class AgentServer:
    """Runs one A2A ``AgentExecutor`` as the worker of an orchestrator.

    ``await AgentServer(MyExecutor(), "my-agent", concurrency=20).run()`` serves tasks whose
    ``agent_orch`` is ``"my-agent"`` until :meth:`stop` (or SIGTERM/SIGINT when run in the main
    thread), then shuts down gracefully. It is meant to own its process: :meth:`run` also sets
    the garbage collector up for serving (:func:`~processgpt.runtime.serving.tune_gc_for_serving`).
    """

    def __init__(
        self,
        executor: Any,
        agent_type: str,
        *,
        concurrency: int | None = None,
        database_url: str | None = None,
        blocking: bool | None = None,
        run_migrations: bool = True,
        **options: Any,
    ) -> None:
        self.settings = Settings()
        if database_url:
            self.settings = self.settings.model_copy(update={"database_url": database_url})
        self._box = secret_box(self.settings)
        view = ExecutorMcpView.of(McpSettings(), self._box)
        self._webhooks = webhook_delivery(self._box)
        self.runners: dict[str, TaskRunner] = {
            agent_type: A2ATaskRunner(executor, blocking=blocking, mcp_view=view)
        }
        self._options = worker_options(self.settings, concurrency=concurrency, **options)
        self._run_migrations = run_migrations
        self._worker: Worker | None = None
        self._stop_requested = False

    async def run(self) -> None:
        db, _embedded = await open_database(
            self.settings,
            run_migrations=self._run_migrations,
            pool_size=max(self.settings.pool_size, 4),
        )
        try:
            files = FileService.configured(
                db, FileSettings(), self.settings.data_dir or default_data_dir(), self._box
            )
            for runner in self.runners.values():
                if isinstance(runner, A2ATaskRunner) and runner.files is None:
                    runner.files = files
            self._worker = Worker(
                db,
                self.runners,
                self._options,
                webhooks=self._webhooks,
                file_storage=files.storage,
            )
            tune_gc_for_serving()
            if self._stop_requested:
                self._worker.stop()
            with _signals_stop(self._worker.stop):
                async with worker_metrics(self.settings, db):
                    await self._worker.run()
        finally:
            await db.close()

    def stop(self) -> None:
        self._stop_requested = True
        if self._worker is not None:
            self._worker.stop()


class _signals_stop:
    """SIGTERM/SIGINT call ``stop`` while inside this block (main thread only); the handlers
    in place before the block are restored after it."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.getsignal(sig)
                loop.add_signal_handler(sig, self._stop)

    def __exit__(self, *exc: object) -> None:
        if self._previous:
            loop = asyncio.get_running_loop()
            for sig, previous in self._previous.items():
                loop.remove_signal_handler(sig)
                # remove_signal_handler leaves SIGTERM at its default, which kills the process
                # on the spot: a SIGTERM during the shutdown after this block would skip the
                # cleanup (closing the pool, stopping an embedded Postgres).
                if previous is not None:
                    signal.signal(sig, previous)
            self._previous.clear()


TERMINATED = 128 + signal.SIGTERM
"""Exit status of a command that SIGTERM ended outside a graceful-stop block."""


def run_command(main: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine as :func:`asyncio.run` does, with SIGTERM handled as
    ``asyncio.run`` handles SIGINT: the coroutine is cancelled, so its ``finally`` blocks run,
    and the process then exits normally, so its at-exit hooks run too (an embedded Postgres
    it started is stopped). Returns the coroutine's result, or :data:`TERMINATED` when SIGTERM
    cancelled it. Inside a :class:`_signals_stop` block SIGTERM asks for a graceful stop
    instead, and the command returns what it returns then."""
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(main)  # signal handlers can only be set in the main thread
    terminated = False
    main_task: asyncio.Task[Any] | None = None

    async def command() -> int:
        nonlocal main_task
        main_task = asyncio.current_task()
        return await main

    def on_sigterm(_signum: int, _frame: object) -> None:
        nonlocal terminated
        terminated = True
        if main_task is not None and not main_task.done():
            main_task.cancel()
            main_task.get_loop().call_soon_threadsafe(lambda: None)  # wake a select()

    # Installed around the whole runner: its closing (cancelling what is left, waiting for
    # worker threads) is part of the clean exit too.
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with asyncio.Runner() as runner:
            try:
                return runner.run(command())
            except asyncio.CancelledError:
                if terminated:
                    log.info("terminated by SIGTERM")
                    return TERMINATED
                raise
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
