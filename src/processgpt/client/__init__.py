"""Python clients of the Execution API (HTTP + SSE, WebSocket chat)."""

from processgpt.client.agent_api import AgentApi, AgentBusyException, AgentException
from processgpt.client.http import (
    ApiError,
    EventPage,
    ProcessGPTClient,
    ProcessView,
    ReconnectPolicy,
    StreamBroken,
    TaskPage,
)
from processgpt.protocols.sse import DataPart, StreamPart

__all__ = [
    "AgentApi",
    "AgentBusyException",
    "AgentException",
    "ApiError",
    "DataPart",
    "EventPage",
    "ProcessGPTClient",
    "ProcessView",
    "ReconnectPolicy",
    "StreamBroken",
    "StreamPart",
    "TaskPage",
]
