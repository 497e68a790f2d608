"""Server-sent event responses: the one way routes answer with a stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from processgpt.domain.errors import DatabaseUnavailable
from processgpt.protocols import ai_sdk

log = logging.getLogger(__name__)

OPENAPI: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An AI SDK UI message stream (SSE, `x-vercel-ai-ui-message-stream: v1`).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
"""The OpenAPI ``responses`` entry of a stream."""


def event_stream(frames: AsyncIterator[str]) -> StreamingResponse:
    """A UI message stream of ``frames``. If the database goes away mid-stream, the stream
    ends without ``[DONE]`` (one log line, no traceback): the client resumes with
    ``Last-Event-ID`` and misses nothing."""
    return StreamingResponse(
        _ended_on_outage(frames), headers=ai_sdk.HEADERS, media_type="text/event-stream"
    )


async def _ended_on_outage(frames: AsyncIterator[str]) -> AsyncIterator[str]:
    try:
        async for frame in frames:
            yield frame
    except DatabaseUnavailable as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "DatabaseUnavailable"
        log.warning("stream ended: the database is unavailable error=%s", cause)
