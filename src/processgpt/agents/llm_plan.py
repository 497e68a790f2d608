"""What one task of the ``llm`` agent asks for: the settings with its agent profile's and its
``input``'s overrides applied (task ``input`` > profile > environment defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processgpt.config import LLM_MAX_STEPS_LIMIT as MAX_STEPS_LIMIT
from processgpt.config import LlmSettings
from processgpt.domain.errors import InvalidInput
from processgpt.tools.mcp import McpTool


@dataclass(frozen=True)
class TaskPlan:
    """What one task asks for: settings with the task's overrides applied."""

    model: str
    instructions: str
    max_steps: int
    form_fields: list[dict[str, Any]]
    allowed_tools: frozenset[str] = frozenset()
    """Allowed MCP server or tool names (the profile's ``tools``); empty allows all."""

    @classmethod
    def of(
        cls, settings: LlmSettings, options: Mapping[str, Any], extras: Mapping[str, Any]
    ) -> TaskPlan:
        profile = extras.get("agent_profile")
        if not isinstance(profile, Mapping):
            profile = {}
        model = options.get("model", profile.get("model") or settings.model)
        instructions = options.get(
            "instructions", profile.get("instructions") or settings.instructions
        )
        max_steps = options.get("max_steps", settings.max_steps)
        if not isinstance(model, str) or not model:
            raise InvalidInput("input.model must be a non-empty string", field="input.model")
        if not isinstance(instructions, str):
            raise InvalidInput("input.instructions must be a string", field="input.instructions")
        if (
            isinstance(max_steps, bool)
            or not isinstance(max_steps, int)
            or not (1 <= max_steps <= MAX_STEPS_LIMIT)
        ):
            raise InvalidInput(
                f"input.max_steps must be an integer from 1 to {MAX_STEPS_LIMIT}",
                field="input.max_steps",
            )
        persona = profile.get("persona")
        if isinstance(persona, str) and persona.strip():
            instructions = f"{instructions}\n\nPersona:\n{persona.strip()}"
        skills = [str(s).strip() for s in profile.get("skills") or [] if str(s).strip()]
        if skills:
            instructions += "\n\nSkills you have (use them where they fit):\n" + "\n".join(
                f"- {skill}" for skill in skills
            )
        allowed = frozenset(str(t) for t in profile.get("tools") or [] if t)
        fields = [f for f in extras.get("form_fields") or [] if isinstance(f, Mapping)]
        return cls(model, instructions, max_steps, [dict(f) for f in fields], allowed)

    def allows_server(self, server: str) -> bool:
        return not self.allowed_tools or any(
            name == server or name.startswith(f"{server}__") for name in self.allowed_tools
        )

    def allows_tool(self, tool: McpTool) -> bool:
        return not self.allowed_tools or bool(
            {tool.server.name, tool.name, f"{tool.server.name}__{tool.tool}"} & self.allowed_tools
        )
