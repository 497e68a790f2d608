"""A complete agent for processgpt: the README's "Your own agent" walks through it.

Run it from the repository root (the current directory is where ``--executor`` looks first)::

    processgpt up                                   # shell 1: database, API, built-in agents
    processgpt worker --agent my-agent --executor examples.my_agent:MyExecutor   # shell 2
    processgpt submit --agent my-agent "the quick brown fox" --input '{"top": 2}' --follow

It counts the words of the task's query: reports progress, streams a sentence as it writes
it, records a "tool" call, and sets a JSON result with one call. No keys, no network.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from processgpt import InvalidInput, RetryLater
from processgpt.agents.a2a_adapter import ProcessGPTEventQueue, ProcessGPTRequestContext


class MyExecutor(AgentExecutor):
    """Counts the words of the query and returns the most frequent ones.

    Task ``input`` (all optional): ``top`` (how many words to return, 1-20, default 3),
    ``delay`` (seconds between steps, default 0.05), ``flaky`` (fail the first attempt with
    a retryable error, to see a retry).
    """

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        # The worker hands every executor these two; their extra methods (the task row, the
        # helpers below) are what this agent uses.
        if not isinstance(context, ProcessGPTRequestContext) or not isinstance(
            event_queue, ProcessGPTEventQueue
        ):
            raise InvalidInput("my-agent runs on a processgpt worker")
        query = context.get_user_input()
        options: dict[str, Any] = context.row.get("input") or {}
        top = options.get("top", 3)
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 20:
            # Bad input: the task fails at once with this message (no retry).
            raise InvalidInput("input.top must be an integer from 1 to 20", field="input.top")
        delay = float(options.get("delay", 0.05))
        if not query.strip():
            raise InvalidInput("give me some text to count")
        if options.get("flaky") and context.row.get("attempts", 1) < 2:
            # A passing problem (a rate limit, a timeout): the task is tried again later.
            raise RetryLater("pretending to hit a rate limit", delay=0.5)

        # 1. Progress events: streams show them as `data-progress` parts.
        words = [w.strip(".,;:!?\"'").lower() for w in query.split()]
        await event_queue.progress({"stage": "reading", "words": len(words)})
        await asyncio.sleep(delay)

        # 2. A tool call and its result: `tool_usage_started` / `tool_usage_finished`.
        call_id = event_queue.tool_call("count_words", {"words": len(words)})
        counts = Counter(w for w in words if w)
        await event_queue.tool_result(call_id, "count_words", dict(counts))
        await asyncio.sleep(delay)

        # 3. Streamed text (the answer as it is written): `text_delta` events.
        common = counts.most_common(top)
        for piece in ("The most frequent words are ", ", ".join(w for w, _ in common), "."):
            await event_queue.text(piece)

        # 4. The result, in one call: the task is DONE with it once `execute` returns.
        await event_queue.complete(
            {"words": len(words), "distinct": len(counts), "top": dict(common)}
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Nothing to release: the worker cancels the running ``execute``."""
