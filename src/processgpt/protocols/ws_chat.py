"""The WebSocket chat protocol (``/v1/agent_ws/{chat_id}/``): its messages and the view of a
task's event log as chat messages. Pure: the server encodes with these models and the Python
client (:mod:`processgpt.client.agent_api`) decodes with them, so the two cannot drift.

A connection: the server sends ``STATUS``; the client sends ``USER_MESSAGE``; the server
answers with ``AGENT_EVENT_*`` messages ending with ``AGENT_EVENT_END``. Failures are
``ERROR`` {code, details} with the codes of :data:`processgpt.domain.errors.ERROR_STATUS`;
``agent_failed`` and ``agent_cancelled`` end a turn and are followed by ``AGENT_EVENT_END``,
every other ``ERROR`` stands alone. A server going away sends ``GRACEFUL_DISCONNECT`` first.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from processgpt.domain.errors import AgentCancelled, AgentFailed
from processgpt.domain.events import Event
from processgpt.domain.task import Task, TaskStatus

__all__ = [
    "TURN_ENDING_ERRORS",
    "AgentEventUnion",
    "ClientMessage",
    "ClientMessageUnion",
    "EClientMessage",
    "EServerMessage",
    "MsgError",
    "MsgEventCustomUpdate",
    "MsgEventEnd",
    "MsgEventSendFile",
    "MsgEventTextChunk",
    "MsgEventToolCallChunk",
    "MsgEventToolResult",
    "MsgGracefulDisconnect",
    "MsgStatus",
    "MsgUserMessage",
    "ServerMessage",
    "ServerMessageUnion",
    "TurnEncoder",
]

MAX_ATTACHMENTS = 100
MAX_TEXT_CHARS = 100_000
MAX_PATH_CHARS = 1000


class EServerMessage(enum.StrEnum):
    STATUS = "STATUS"
    ERROR = "ERROR"
    GRACEFUL_DISCONNECT = "GRACEFUL_DISCONNECT"
    AGENT_EVENT_TEXT_CHUNK = "AGENT_EVENT_TEXT_CHUNK"
    AGENT_EVENT_TOOL_CALL_CHUNK = "AGENT_EVENT_TOOL_CALL_CHUNK"
    AGENT_EVENT_TOOL_RESULT = "AGENT_EVENT_TOOL_RESULT"
    AGENT_EVENT_CUSTOM_UPDATE = "AGENT_EVENT_CUSTOM_UPDATE"
    AGENT_EVENT_SEND_FILE = "AGENT_EVENT_SEND_FILE"
    AGENT_EVENT_END = "AGENT_EVENT_END"


class EClientMessage(enum.StrEnum):
    USER_MESSAGE = "USER_MESSAGE"


# -- server → client --


class MsgStatus(BaseModel):
    """Sent once when the connection is open and the chat is this client's."""

    type: Literal[EServerMessage.STATUS] = EServerMessage.STATUS


class MsgError(BaseModel):
    """A refusal or failure; ``code`` is a stable error code."""

    type: Literal[EServerMessage.ERROR] = EServerMessage.ERROR
    code: str
    details: str


class MsgGracefulDisconnect(BaseModel):
    """The server is going away; reconnect (to another server) later."""

    type: Literal[EServerMessage.GRACEFUL_DISCONNECT] = EServerMessage.GRACEFUL_DISCONNECT


class MsgEventTextChunk(BaseModel):
    """A piece of the agent's answer."""

    type: Literal[EServerMessage.AGENT_EVENT_TEXT_CHUNK] = EServerMessage.AGENT_EVENT_TEXT_CHUNK
    text: str
    source: str = "main"


class MsgEventToolCallChunk(BaseModel):
    """The agent calls a tool; ``args_chunk`` is (a piece of) the JSON text of its arguments."""

    type: Literal[EServerMessage.AGENT_EVENT_TOOL_CALL_CHUNK] = (
        EServerMessage.AGENT_EVENT_TOOL_CALL_CHUNK
    )
    tool_name: str | None = None
    args_chunk: str | None = None
    source: str = "main"


class MsgEventToolResult(BaseModel):
    """A tool's result; a failed call has ``result == {"error": <message>}``."""

    type: Literal[EServerMessage.AGENT_EVENT_TOOL_RESULT] = EServerMessage.AGENT_EVENT_TOOL_RESULT
    tool_name: str
    result: Any
    source: str = "main"


class MsgEventCustomUpdate(BaseModel):
    """Any other event of the agent: ``payload == {"event_type": …, "data": …}``."""

    type: Literal[EServerMessage.AGENT_EVENT_CUSTOM_UPDATE] = (
        EServerMessage.AGENT_EVENT_CUSTOM_UPDATE
    )
    payload: dict[str, Any]
    source: str = "main"


class MsgEventSendFile(BaseModel):
    """The agent sends the user a file: its workspace path, else its URL (for a stored file,
    a signed link that downloads it without a key until it expires)."""

    type: Literal[EServerMessage.AGENT_EVENT_SEND_FILE] = EServerMessage.AGENT_EVENT_SEND_FILE
    path: str


class MsgEventEnd(BaseModel):
    """The turn is over (the task ended, or waits for the user's answer)."""

    type: Literal[EServerMessage.AGENT_EVENT_END] = EServerMessage.AGENT_EVENT_END
    tokens_used: int = 0


AgentEventUnion = (
    MsgEventTextChunk
    | MsgEventToolCallChunk
    | MsgEventToolResult
    | MsgEventCustomUpdate
    | MsgEventSendFile
    | MsgEventEnd
)
ServerMessageUnion = MsgStatus | MsgError | MsgGracefulDisconnect | AgentEventUnion

ServerMessage: TypeAdapter[ServerMessageUnion] = TypeAdapter(
    Annotated[ServerMessageUnion, Field(discriminator="type")]
)
"""Decodes any server message: ``ServerMessage.validate_json(text)``."""


# -- client → server --


class MsgUserMessage(BaseModel):
    """The user's message; the next turn of the chat (or the answer to the agent's question
    when the chat's task waits for input). ``attachments`` are workspace paths."""

    type: Literal[EClientMessage.USER_MESSAGE] = EClientMessage.USER_MESSAGE
    text: str = Field(max_length=MAX_TEXT_CHARS)
    attachments: list[Annotated[str, Field(max_length=MAX_PATH_CHARS)]] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS
    )


ClientMessageUnion = MsgUserMessage
ClientMessage: TypeAdapter[ClientMessageUnion] = TypeAdapter(
    Annotated[ClientMessageUnion, Field(discriminator="type")]
)
"""Decodes any client message."""

TURN_ENDING_ERRORS = frozenset({AgentFailed.code, AgentCancelled.code})
"""``ERROR`` codes that end a turn: an ``AGENT_EVENT_END`` follows them."""

# Lifecycle events the runtime writes or that other messages already carry.
_INTERNAL = frozenset(
    {
        "task_completed",
        "crew_completed",
        "task_requeued",
        "task_cancelled",
        "human_response",
        "step_started",
        "step_finished",
    }
)


_TOKEN_PARTS = (
    "input_tokens",
    "output_tokens",
    "inputTokens",
    "outputTokens",
    "prompt_tokens",
    "completion_tokens",
)


def _tokens(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    for key in ("total_tokens", "totalTokens", "tokens"):
        if isinstance(usage.get(key), int):
            return int(usage[key])
    parts = [usage.get(k) for k in _TOKEN_PARTS]
    return sum(p for p in parts if isinstance(p, int))


@dataclass
class TurnEncoder:
    """A turn's events as chat messages. Keeps the token count for ``AGENT_EVENT_END``.
    ``file_url``: the signed link of a stored file a ``file`` event names."""

    tokens_used: int = 0
    file_url: Callable[[dict[str, Any]], str | None] | None = None

    def encode(self, event: Event) -> list[AgentEventUnion]:  # noqa: PLR0911 - one per type
        """The messages for one event (possibly none)."""
        kind, data = event.event_type, event.data
        body: dict[str, Any] = data if isinstance(data, dict) else {}
        if kind == "text_delta":
            text = str(body.get("text", data if isinstance(data, str) else ""))
            return [MsgEventTextChunk(text=text)] if text else []
        if kind == "tool_usage_started":
            args = json.dumps(body.get("input", {}), ensure_ascii=False, default=str)
            name = str(body.get("tool_name") or "tool")
            return [MsgEventToolCallChunk(tool_name=name, args_chunk=args)]
        if kind == "tool_usage_finished":
            failed = body.get("error") is not None
            result = {"error": body["error"]} if failed else body.get("output")
            name = str(body.get("tool_name") or "tool")
            return [MsgEventToolResult(tool_name=name, result=result)]
        if kind == "file":
            where = body.get("path") or body.get("url")
            if not where and body.get("file_id") and self.file_url is not None:
                where = self.file_url(body)
            return [MsgEventSendFile(path=str(where))] if where else []
        if kind == "step_finished":
            self.tokens_used += _tokens(body.get("usage"))
            return []
        if kind == "error" and not body.get("retrying", False):
            return []  # the task fails: the turn ends with an ERROR message instead
        if kind in _INTERNAL:
            return []
        return [MsgEventCustomUpdate(payload={"event_type": kind, "data": data})]

    def finish(self, task: Task) -> list[ServerMessageUnion]:
        """The messages that end a turn whose task is ``task`` (terminal or waiting)."""
        out: list[ServerMessageUnion] = []
        if task.status is TaskStatus.DONE and task.output is not None:
            out.append(MsgEventCustomUpdate(payload={"event_type": "result", "data": task.output}))
        elif task.status is TaskStatus.FAILED:
            error = task.error or {}
            details = str(error.get("message") or error.get("code") or "the agent failed")
            out.append(MsgError(code=AgentFailed.code, details=details))
        elif task.status is TaskStatus.CANCELLED:
            out.append(MsgError(code=AgentCancelled.code, details="the agent's task was cancelled"))
        out.append(MsgEventEnd(tokens_used=self.tokens_used))
        return out
