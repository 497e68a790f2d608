"""Compatibility names of ``process-gpt-agent-sdk``, backed by the processgpt runtime.

Agents written for that SDK run with at most their a2a imports changed::

    from processgpt_agent_sdk import ProcessGPTAgentServer
    server = ProcessGPTAgentServer(agent_executor=MyExecutor(), agent_type="crewai-action")
    await server.run()

Every other name those agents import (a2a-sdk 0.3's ``AgentExecutor``, ``RequestContext``,
``EventQueue``, ``TaskStatusUpdateEvent``, ``TaskState``, ``new_agent_text_message``,
``new_text_artifact``, …) is in :mod:`processgpt_agent_sdk.compat`.
"""

from __future__ import annotations

from typing import Any

from processgpt.agents.a2a_adapter import ProcessGPTEventQueue, ProcessGPTRequestContext
from processgpt.app import AgentServer
from processgpt.domain.errors import ContextPreparationError


class ProcessGPTAgentServer(AgentServer):
    """``ProcessGPTAgentServer(agent_executor, agent_type)``: polls nothing; wakes on NOTIFY,
    runs up to ``concurrency`` tasks at once and writes every event durably."""

    def __init__(self, agent_executor: Any, agent_type: str, **options: Any) -> None:
        super().__init__(agent_executor, agent_type, **options)
        self.agent_executor = agent_executor
        self.agent_orch = agent_type


__all__ = [
    "ContextPreparationError",
    "ProcessGPTAgentServer",
    "ProcessGPTEventQueue",
    "ProcessGPTRequestContext",
]
