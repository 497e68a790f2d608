"""Background tasks owned by a block: started on entry, ended on exit, never left behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def background(
    coro: Coroutine[Any, Any, None],
    *,
    name: str,
    finish: Callable[[], None] | None = None,
    on_crash: Callable[[BaseException], None] | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``coro`` as a task while the block runs.

    Leaving the block, the task ends before the block is left: when the block ends normally
    and ``finish`` is given, ``finish()`` is called and the task is awaited (``finish`` must
    make it return); otherwise the task is cancelled and waited for. If the task failed, its
    exception is raised here (unless the block is already raising): a background task's
    error is never lost. ``on_crash(exc)`` is called, and the failure logged, as soon as the
    task fails, so that its owner can react before the block ends.
    """
    task = asyncio.create_task(coro, name=name)

    def crashed(done: asyncio.Task[None]) -> None:
        if done.cancelled() or done.exception() is None:
            return
        exc = done.exception()
        assert exc is not None
        log.error("background task failed task=%s", name, exc_info=exc)
        if on_crash is not None:
            on_crash(exc)

    task.add_done_callback(crashed)
    try:
        yield task
    except BaseException:
        await _cancel(task)
        raise
    if finish is None:
        await _cancel(task)
    else:
        finish()
        await task
    if not task.cancelled():
        task.result()  # what the task failed with, if it did


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it ended. A cancellation of the caller meanwhile
    propagates at once (the task, already cancelled, goes on unwinding)."""
    task.cancel()
    await asyncio.wait([task])
