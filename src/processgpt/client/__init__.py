"""Python clients of the Execution API (HTTP + SSE, WebSocket chat)."""

from processgpt.client.agent_api import AgentApi, AgentBusyException, AgentException
from processgpt.client.http import ApiError, ProcessGPTClient, ReconnectPolicy, StreamBroken
from processgpt.protocols.sse import DataPart, StreamPart
from processgpt.protocols.views import EventPage, ProcessView, TaskPage

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
