"""The ``llm`` agent's memory tools: ``memory_search`` (the task's tenant and scope only, bound
by the runtime: :class:`~processgpt.memory.bound.TaskMemory`) and ``memory_save`` (proposals
for the Agent Boss, never active at once). Arguments other than those declared are ignored:
no argument can name another tenant, agent or scope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processgpt.domain.errors import ProcessGPTError
from processgpt.memory.bound import TaskMemory
from processgpt.tools.mcp_tools import ToolOutcome

MEMORY_SEARCH = "memory_search"
MEMORY_SAVE = "memory_save"

MEMORY_SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": MEMORY_SEARCH,
        "description": "Search what you were taught and learned from feedback for this kind "
        "of task (guidelines, preferences, facts, corrections).",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "required": ["query"],
        },
    },
}
MEMORY_SAVE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": MEMORY_SAVE,
        "description": "Propose something worth remembering for later tasks; a person "
        "approves it before it is used.",
        "parameters": {
            "type": "object",
            "properties": {
                "content": {"type": "string", "description": "One short general rule or fact."},
                "kind": {"type": "string", "enum": ["guideline", "preference", "fact"]},
            },
            "required": ["content"],
        },
    },
}
MEMORY_TOOLS = (MEMORY_SEARCH, MEMORY_SAVE)


async def call_memory_tool(
    memory: TaskMemory, name: str, arguments: Mapping[str, Any]
) -> ToolOutcome:
    """Run a memory tool; a refused call is a tool error the model can read."""
    try:
        if name == MEMORY_SEARCH:
            limit = arguments.get("limit", 5)
            limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else 5
            items = await memory.search(str(arguments.get("query") or ""), limit)
            return ToolOutcome(text=_text(items), output={"items": items})
        saved = await memory.propose(
            str(arguments.get("content") or ""), str(arguments.get("kind") or "guideline")
        )
        return ToolOutcome(text=f"Proposed for approval (id {saved['id']}).", output=saved)
    except ProcessGPTError as exc:
        return ToolOutcome(text=f"Error: {exc.message}", error=exc.message)


def _text(items: list[dict[str, Any]]) -> str:
    if not items:
        return "Nothing found in memory."
    return "\n".join(f"- [{i['id']}] ({i['kind']}) {i['content']}" for i in items)
