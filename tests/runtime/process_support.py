"""Helpers for the process execution tests: publish graphs built in code, read rows."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from processgpt.agents.a2a_adapter import ProcessGPTEventQueue, ProcessGPTRequestContext
from processgpt.db.database import Database
from processgpt.db.process_definitions import ProcessDefinitionRepository
from processgpt.domain.process.model import (
    Activity,
    AgentMode,
    Node,
    NodeKind,
    ProcessGraph,
    TaskType,
)
from processgpt.domain.process.publish import Compiled, FormSpec, SourceFormat
from processgpt.domain.process.validate import check


async def publish(
    db: Database,
    graph: ProcessGraph,
    *,
    tenant: str = "default",
    forms: Mapping[str, FormSpec] | None = None,
) -> int:
    """Publish ``graph`` (validated as at publish) as the next version of its id."""
    check(graph)
    source = json.dumps(graph.to_json(), sort_keys=True)
    digest = hashlib.sha256(source.encode()).hexdigest()
    compiled = Compiled(graph, graph.name or graph.id, SourceFormat.PROCESSGPT_JSON, source, digest)
    version, _ = await ProcessDefinitionRepository(db).publish(tenant, compiled, forms)
    return version.version


def agent_task(node_id: str, agent: str = "stub", **kw: Any) -> Node:
    return Node(
        id=node_id,
        kind=NodeKind.TASK,
        name=node_id,
        activity=Activity(
            task_type=TaskType.SERVICE, agent=agent, agent_mode=AgentMode.COMPLETE, **kw
        ),
    )


def human_task(node_id: str, **kw: Any) -> Node:
    return Node(id=node_id, kind=NodeKind.TASK, name=node_id, activity=Activity(**kw))


async def tasks_of(db: Database, instance_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT * FROM todolist WHERE proc_inst_id = $1 ORDER BY created_at, id", instance_id
    )
    return [dict(r) for r in rows]


async def open_task(db: Database, instance_id: uuid.UUID, activity_id: str) -> dict[str, Any]:
    rows = await db.fetch(
        "SELECT * FROM todolist WHERE proc_inst_id = $1 AND activity_id = $2 "
        "AND status IN ('TODO', 'PENDING', 'IN_PROGRESS') ORDER BY activation DESC",
        instance_id,
        activity_id,
    )
    assert rows, f"no open task at {activity_id}"
    return dict(rows[0])


class StepExecutor(AgentExecutor):
    """An agent step: its result is ``{"doubled": input.n * 2, "seen": <the task's query>}``
    (``n`` 0 when absent); with ``fail`` it raises instead."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.runs = 0

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert isinstance(context, ProcessGPTRequestContext)
        assert isinstance(event_queue, ProcessGPTEventQueue)
        self.runs += 1
        if self.fail:
            raise RuntimeError("the step failed on purpose")
        options = context.row.get("input") or {}
        await event_queue.complete(
            {"doubled": int(options.get("n", 0)) * 2, "seen": context.get_user_input()}
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class JudgeExecutor(AgentExecutor):
    """The judge of text conditions: a condition holds when its text names a variable whose
    value is true (``"when urgent"`` holds for ``{"urgent": true}``). ``raw`` replaces the
    answer (bad output)."""

    def __init__(self, raw: Any = None) -> None:
        self.raw = raw
        self.runs = 0

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert isinstance(context, ProcessGPTRequestContext)
        assert isinstance(event_queue, ProcessGPTEventQueue)
        self.runs += 1
        if self.raw is not None:
            await event_queue.complete(self.raw)
            return
        options = context.row.get("input") or {}
        variables = options.get("variables", {})
        verdicts = {}
        for q in options.get("questions", []):
            holds = any(v is True and k in q["condition"] for k, v in variables.items())
            verdicts[q["flow_id"]] = {"holds": holds, "reasoning": f"judged {q['condition']}"}
        text = "Here you are:\n```json\n" + json.dumps({"verdicts": verdicts}) + "\n```"
        await event_queue.complete({"text": text})

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None
