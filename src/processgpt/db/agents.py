"""Agent profiles (``agents``); a tenant's MCP servers are in :mod:`processgpt.db.mcp_servers`.

A profile is a tenant's named agent: an orchestrator plus the model, instructions, persona,
allowed tools and skills it runs with. A task whose ``agent_orch`` is a profile name runs the
profile (see :meth:`processgpt.db.tasks.TaskRepository.submit`). Profile names may not be the
names of orchestrators known when the profile is made.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from processgpt.db.database import Database
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import (
    AgentProfileNotFound,
    InvalidInput,
    NameTaken,
    UnknownAgent,
)
from processgpt.domain.task import AGENT_ORCH_PATTERN

_MAX_TEXT = 100_000
_MAX_LIST = 200


def _check_name(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(value):
        raise InvalidInput(f"{what} {value!r} is not a valid name", field="name")
    return value


def _clean_list(values: list[str]) -> list[str]:
    cleaned = [v.strip() for v in values if v.strip()]
    if any(len(v) > 200 or "\x00" in v for v in cleaned):
        raise ValueError("each entry must be at most 200 characters, without NUL")
    return list(dict.fromkeys(cleaned))


class _ProfileFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=_MAX_TEXT)
    persona: str | None = Field(default=None, max_length=_MAX_TEXT)

    @field_validator("agent_orch", check_fields=False)
    @classmethod
    def _orch(cls, value: str | None) -> str | None:
        if value is not None and not AGENT_ORCH_PATTERN.match(value):
            raise ValueError("agent_orch is not a valid orchestrator name")
        return value

    @field_validator("tools", "skills", check_fields=False)
    @classmethod
    def _lists(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _clean_list(value)

    @field_validator("model", "instructions", "persona")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("text may not contain NUL characters")
        return value


class AgentProfileSpec(_ProfileFields):
    """A whole profile (create, ``PUT``). ``tools``: allowed tool names (an MCP server name,
    or a ``<server>__<tool>`` name as the model sees it); empty allows all."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"agent_orch": "llm", "model": "gpt-4o-mini", "instructions": "Be brief."}]
        }
    )

    agent_orch: str = Field(examples=["llm"])
    tools: list[str] = Field(default_factory=list, max_length=_MAX_LIST)
    skills: list[str] = Field(default_factory=list, max_length=_MAX_LIST)


class AgentProfilePatch(_ProfileFields):
    """Fields of a profile to change (``PATCH``); absent fields are kept, null clears."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "gpt-4o"}]})

    agent_orch: str | None = Field(default=None, examples=["llm"])
    tools: list[str] | None = Field(default=None, max_length=_MAX_LIST)
    skills: list[str] | None = Field(default=None, max_length=_MAX_LIST)


class AgentRepository:
    def __init__(self, db: Database, *, known_orchestrators: frozenset[str] = frozenset()) -> None:
        self.db = db
        self.known = known_orchestrators

    async def _orchestrator_exists(self, name: str) -> bool:
        return name in self.known or bool(
            await self.db.fetchval(QUERIES["orchestrator_exists"], name)
        )

    async def _check_orch(self, agent_orch: str) -> None:
        if not await self._orchestrator_exists(agent_orch):
            raise UnknownAgent(agent_orch)

    # -- profiles ------------------------------------------------------------------------

    async def create(self, tenant_id: str, name: str, spec: AgentProfileSpec) -> dict[str, Any]:
        _check_name(name, AGENT_ORCH_PATTERN, "agent profile")
        if await self._orchestrator_exists(name):
            raise NameTaken(f"{name!r} is the name of an orchestrator")
        await self._check_orch(spec.agent_orch)
        row = await self._write(
            "insert_agent",
            tenant_id,
            name,
            spec.agent_orch,
            spec.model,
            spec.instructions,
            spec.persona,
            spec.tools,
            spec.skills,
        )
        if row is None:
            raise NameTaken(f"an agent profile named {name!r} already exists")
        return row

    async def update(
        self,
        tenant_id: str,
        name: str,
        patch: AgentProfilePatch | AgentProfileSpec,
        *,
        replace: bool,
    ) -> dict[str, Any]:
        """``replace``: the patch is the whole profile (PUT); else only its set fields."""
        current = await self.get(tenant_id, name)
        changes = patch.model_dump(exclude_unset=not replace)
        merged = {**current, **changes}
        merged["tools"] = merged.get("tools") or []
        merged["skills"] = merged.get("skills") or []
        if not merged.get("agent_orch"):
            raise InvalidInput("agent_orch is required", field="agent_orch")
        if merged["agent_orch"] != current["agent_orch"]:
            await self._check_orch(merged["agent_orch"])
        row = await self._write(
            "update_agent",
            tenant_id,
            name,
            merged["agent_orch"],
            merged["model"],
            merged["instructions"],
            merged["persona"],
            merged["tools"],
            merged["skills"],
        )
        if row is None:
            raise AgentProfileNotFound(name)
        return row

    async def get(self, tenant_id: str, name: str) -> dict[str, Any]:
        row = await self.db.fetchrow(QUERIES["get_agent"], tenant_id, name)
        if row is None:
            raise AgentProfileNotFound(name)
        return dict(row)

    async def list_agents(self, tenant_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.db.fetch(QUERIES["list_agents"], tenant_id)]

    async def delete(self, tenant_id: str, name: str) -> None:
        if await self.db.fetchrow(QUERIES["delete_agent"], tenant_id, name) is None:
            raise AgentProfileNotFound(name)

    async def _write(self, query: str, *args: Any) -> dict[str, Any] | None:
        try:
            row = await self.db.fetchrow(QUERIES[query], *args)
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {args[0]!r} does not exist", field="tenant_id") from None
        except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
            # The constraint's name only: never the row's values (they may hold secrets).
            raise InvalidInput(f"refused by the schema: {exc.__class__.__name__}") from None
        return None if row is None else dict(row)
