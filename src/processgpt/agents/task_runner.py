"""Running an A2A ``AgentExecutor`` for the worker: :class:`A2ATaskRunner` hands each task's
request context and event queue (:mod:`processgpt.agents.a2a_adapter`) to the executor, on the
worker's event loop or, for blocking executors, in a thread, and turns what the events said
into the run's result."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2a.server.agent_execution import AgentExecutor

from processgpt.agents.a2a_adapter import (
    ProcessGPTEventQueue,
    ProcessGPTRequestContext,
    RunRecord,
    store_as_form_result,
)
from processgpt.domain.errors import (
    ContextPreparationError,
    ExecutorReturnedWithoutResult,
    LeaseLost,
)
from processgpt.files.service import FileService
from processgpt.files.task_files import TaskFiles
from processgpt.runtime.run import Outcome, RunResult, TaskRun
from processgpt.tools.executor_view import ExecutorMcpView


class A2ATaskRunner:
    """Adapts an A2A ``AgentExecutor`` to the worker's runner interface.

    Executors whose ``execute`` is a plain function, or that set ``blocking = True``, run in a
    thread (with their own event loop when ``execute`` is async) so they never stall the
    worker's loop, its heartbeats or other tasks.
    """

    def __init__(
        self,
        executor: AgentExecutor,
        *,
        blocking: bool | None = None,
        mcp_view: ExecutorMcpView | None = None,
        files: FileService | None = None,
    ) -> None:
        """``mcp_view``: what executors see of the tenant's MCP servers (built by the
        composition root; default: from the environment, when first needed). ``files``: the
        worker's file storage (``context.files``, ``event_queue.send_file``; without it those
        raise :class:`InvalidConfiguration`); may also be given later, by :attr:`files`."""
        self.executor = executor
        self._mcp_view = mcp_view
        self.files = files
        is_async = inspect.iscoroutinefunction(executor.execute)
        self.blocking = (
            blocking
            if blocking is not None
            else bool(getattr(executor, "blocking", False)) or not is_async
        )
        self._is_async = is_async
        self._contexts: dict[uuid.UUID, tuple[ProcessGPTRequestContext, ProcessGPTEventQueue]] = {}
        self._threads: dict[uuid.UUID, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}
        # Blocking executors get threads of their own, as many as may run at once, instead
        # of sharing the loop's small default pool.
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, task: TaskRun) -> RunResult:
        try:
            files = self._task_files(task)
            context = ProcessGPTRequestContext(task, self._view, files)
        except Exception as exc:
            raise ContextPreparationError(exc) from exc
        queue = ProcessGPTEventQueue(task, files)
        self._contexts[task.id] = (context, queue)
        try:
            if not self.blocking:
                await self.executor.execute(context, queue)
            elif self._is_async:
                await self._in_thread(self._run_in_thread, task.id, context, queue)
            else:  # a plain function despite the abstract signature
                sync_execute: Callable[..., object] = self.executor.execute
                await self._in_thread(sync_execute, context, queue)
        finally:
            self._contexts.pop(task.id, None)
        return _result_of(queue.result, task.form_id)

    def _task_files(self, task: TaskRun) -> TaskFiles | None:
        if self.files is None:
            return None
        claimed = task.claimed
        return TaskFiles(
            self.files,
            task.loop,
            tenant_id=claimed.tenant_id,
            task_id=task.id,
            agent=claimed.agent_orch,
            task_input=lambda: task.row.get("input"),
            proc_inst_id=claimed.proc_inst_id,
            fence=claimed.fence,
        )

    def _view(self, tenant_config: Any, tenant_id: str) -> dict[str, Any]:
        if self._mcp_view is None:
            self._mcp_view = ExecutorMcpView.from_environment()
        return self._mcp_view(tenant_config, tenant_id)

    def _run_in_thread(
        self, task_id: uuid.UUID, context: ProcessGPTRequestContext, queue: ProcessGPTEventQueue
    ) -> None:
        async def main() -> None:
            current = asyncio.current_task()
            assert current is not None
            self._threads[task_id] = (asyncio.get_running_loop(), current)
            try:
                await self.executor.execute(context, queue)
            finally:
                self._threads.pop(task_id, None)

        asyncio.run(main())

    async def _in_thread(self, fn: Callable[..., object], *args: Any) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=_MAX_THREADS, thread_name_prefix="processgpt-executor"
            )
        await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def aclose(self) -> None:
        """Close the executor's long-lived resources if it has any (``aclose()``), and the
        threads of blocking executors."""
        close = getattr(self.executor, "aclose", None)
        if close is not None:
            await close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def cancel(self, task: TaskRun) -> None:
        pair = self._contexts.get(task.id)
        thread = self._threads.get(task.id)
        if thread is not None:
            loop, inner = thread
            loop.call_soon_threadsafe(inner.cancel)
        if pair is not None:
            context, queue = pair
            # Writes after a stop are refused: the cancellation itself is already durable.
            with contextlib.suppress(LeaseLost):
                await self.executor.cancel(context, queue)


_MAX_THREADS = 256
"""Threads for blocking executors per runner; a worker runs at most ``concurrency`` at once."""


def _result_of(result: RunRecord, form_id: str | None) -> RunResult:
    outcome = result.outcome
    if outcome is None and result.last_message is not None:
        return RunResult(Outcome.COMPLETED, store_as_form_result(result.last_message, form_id))
    if outcome is None:
        raise ExecutorReturnedWithoutResult(
            "the executor returned without a final artifact, a terminal state or a request "
            "for input"
        )
    if outcome is Outcome.COMPLETED:
        output = result.output if result.has_output else result.output or result.last_message
        return RunResult(outcome, store_as_form_result(output, form_id))
    return RunResult(outcome, message=result.message)
