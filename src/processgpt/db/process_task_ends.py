"""What a process task's end causes, in the transaction that writes the end (a worker's
batch, or lease recovery): an agent step's result or failure, a draft handed to its person,
or a judge's verdicts running the event that waited for them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processgpt.db.process_steps import Outcome, StepRun
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import InvalidInput
from processgpt.domain.process.events import (
    TaskCompleted,
    TaskFailed,
)
from processgpt.domain.process.model import AgentMode
from processgpt.domain.process.step import Verdict
from processgpt.domain.process.step_events import (
    BadVerdicts,
    event_from_json,
    parse_verdicts,
    verdicts_from_json,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndedTask:
    """A process task whose final state was just committed in this transaction (by a
    worker's batch): a step (``activation`` set) or a judge task (``step_event`` set)."""

    id: uuid.UUID
    proc_inst_id: uuid.UUID
    activity_id: str | None
    activation: int | None
    step_event: Mapping[str, Any] | None
    done: bool
    """DONE (else FAILED with its attempts used up)."""
    output: Any = None
    error: Any = None


async def task_ended(run: StepRun, task: EndedTask) -> Outcome:
    """Run the step a process task's end causes (the task's final state is written in
    this transaction): an agent step's result (a draft step's goes to its person
    instead), its failure (an incident), or a judge's verdicts."""
    if task.step_event is not None:
        return await _judged(run, task)
    assert task.activity_id is not None and task.activation is not None
    inst = run.locked.get(task.proc_inst_id)
    if inst is None:
        await run.lock([task.proc_inst_id])
        inst = run.locked[task.proc_inst_id]
    if not task.done:
        return await run.run(
            inst.id, TaskFailed(task.activity_id, task.activation, _error_text(task.error))
        )
    graph = await run.graph(inst)
    node = graph.node(task.activity_id) if graph.has_node(task.activity_id) else None
    if (
        node is not None
        and node.activity is not None
        and node.activity.agent_mode is AgentMode.DRAFT
    ):
        await run.conn.execute(QUERIES["task_to_draft"], task.id)
        return Outcome()
    output = task.output if isinstance(task.output, Mapping) else {"result": task.output}
    return await run.run(inst.id, TaskCompleted(task.activity_id, task.activation, output))


async def _judged(run: StepRun, task: EndedTask) -> Outcome:
    assert task.step_event is not None
    try:
        event = event_from_json(task.step_event["event"])
        known = verdicts_from_json(task.step_event.get("verdicts") or {})
    except (KeyError, TypeError, ValueError) as exc:
        log.error("judge task with an unreadable step_event task=%s error=%s", task.id, exc)
        return Outcome()
    flow_ids = [str(f) for f in task.step_event.get("flow_ids") or ()]
    problem: str | None = None
    if task.done:
        try:
            new = parse_verdicts(task.output, flow_ids)
        except BadVerdicts as exc:
            problem = str(exc)
            await run.conn.execute(
                QUERIES["fail_judge_task"],
                task.id,
                {"code": "bad_verdicts", "message": problem},
            )
    else:
        problem = "the judge task failed: " + _error_text(task.error)
    if problem is not None:
        # The conditions cannot be decided: the event runs with verdicts that say so, and
        # the first gateway that needs one opens a condition incident there (what the event
        # brought, a task's output say, is kept). Resolving the incident routes from that
        # gateway again, which asks the judge again.
        new = {f: Verdict(False, error=problem) for f in flow_ids if f not in known}
    try:
        return await run.run(task.proc_inst_id, event, {**known, **new})
    except InvalidInput as exc:  # a migration that no longer applies
        log.warning("judged event refused task=%s error=%s", task.id, exc)
        return Outcome()


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or "failed")[:2000]
    return "" if error is None else str(error)[:2000]
