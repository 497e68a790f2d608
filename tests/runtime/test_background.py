"""Background tasks owned by a block: never left running, their errors never lost."""

from __future__ import annotations

import asyncio

import pytest

from processgpt.runtime.background import background


async def forever(started: asyncio.Event, cancelled: list[bool]) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(True)
        raise


async def test_a_loop_is_cancelled_when_the_block_ends() -> None:
    started, cancelled = asyncio.Event(), []
    async with background(forever(started, cancelled), name="loop") as task:
        await started.wait()
    assert task.done() and task.cancelled() and cancelled == [True]


async def test_finish_lets_the_task_complete_its_work_before_the_block_ends() -> None:
    closing = asyncio.Event()
    written: list[int] = []

    async def drain() -> None:
        await closing.wait()
        await asyncio.sleep(0.01)  # still busy when the block ends
        written.append(1)

    async with background(drain(), name="drain", finish=closing.set) as task:
        pass
    assert task.done() and not task.cancelled() and written == [1]


async def test_a_failed_task_is_reported_at_once_and_raised_when_the_block_ends() -> None:
    crashes: list[BaseException] = []
    reported = asyncio.Event()

    async def crash() -> None:
        raise RuntimeError("a bug")

    def on_crash(exc: BaseException) -> None:
        crashes.append(exc)
        reported.set()

    with pytest.raises(RuntimeError, match="a bug"):
        async with background(crash(), name="crash", on_crash=on_crash):
            await reported.wait()  # the owner hears of it before the block ends
            assert isinstance(crashes[0], RuntimeError)


async def test_when_the_block_fails_the_task_is_cancelled_and_the_block_error_propagates() -> None:
    started, cancelled = asyncio.Event(), []
    closing = asyncio.Event()
    with pytest.raises(KeyError):
        async with background(forever(started, cancelled), name="loop", finish=closing.set) as task:
            await started.wait()
            raise KeyError("body")
    assert task.cancelled() and cancelled == [True] and not closing.is_set()
