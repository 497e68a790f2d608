"""The shipped expense approval example, run by the execution layer with a real worker whose
``llm`` agent is a stand-in: a person files the expense through its form, the agent drafts the
assessment a controller edits, the manager decides, a text condition is judged by the agent,
the loop back is a new activation, and the instance completes with its history."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue

from processgpt.agents.a2a_adapter import ProcessGPTEventQueue, ProcessGPTRequestContext
from processgpt.db.database import Database
from processgpt.db.process_definitions import ProcessDefinitionRepository
from processgpt.domain.process.publish import FormSpec, compile_definition
from processgpt.domain.process.state import InstanceStatus
from processgpt.runtime.process_service import ProcessService
from tests.conftest import StartWorker
from tests.runtime.process_support import tasks_of
from tests.support import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "processes"


class StandInLlm(AgentExecutor):
    """Judges text conditions (a condition holds when the variables mention "reassess") and
    otherwise drafts or performs a step."""

    def __init__(self) -> None:
        self.judged = 0
        self.steps: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert isinstance(context, ProcessGPTRequestContext)
        assert isinstance(event_queue, ProcessGPTEventQueue)
        options: dict[str, Any] = context.row.get("input") or {}
        if "questions" in options:
            self.judged += 1
            said = json.dumps(options["variables"])
            verdicts = {
                q["flow_id"]: {"holds": "reassess" in said, "reasoning": "read the comment"}
                for q in options["questions"]
            }
            await event_queue.complete({"verdicts": verdicts})
            return
        self.steps.append(str(context.row.get("activity_id")))
        if context.row.get("activity_id") == "assess":
            await event_queue.complete({"assessment_form": {"summary": "within policy"}})
        else:
            await event_queue.complete({"payment": "ordered"})

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


async def _todo(db: Database, instance_id: uuid.UUID, activity_id: str, activation: int) -> Any:
    async def found() -> Any:
        return await db.fetchrow(
            "SELECT * FROM todolist WHERE proc_inst_id = $1 AND activity_id = $2 "
            "AND activation = $3 AND status = 'TODO'",
            instance_id,
            activity_id,
            activation,
        )

    return await wait_until(found, 20)


async def test_the_expense_approval_example_runs_to_completion(
    db: Database, start_worker: StartWorker
) -> None:
    forms_json = json.loads((EXAMPLES / "expense_approval.forms.json").read_text())
    forms = {k: FormSpec(fields=v["fields"]) for k, v in forms_json.items()}
    source = json.loads((EXAMPLES / "expense_approval.json").read_text())
    compiled = compile_definition("expense_approval", source, forms=forms)
    await ProcessDefinitionRepository(db).publish("default", compiled, forms)
    llm = StandInLlm()
    await start_worker({"llm": llm})
    service = ProcessService(db)
    inst, _ = await service.start("default", "expense_approval", roles={"employee": "emp@x"})

    filed = await _todo(db, inst.id, "file_expense", 1)
    assert filed["user_id"] == "emp@x" and filed["tool"] == "formHandler:expense_form"
    await service.complete_task(
        "default", filed["id"], {"expense_form": {"amount": 120, "reason": "taxi"}}
    )
    draft = await _todo(db, inst.id, "assess", 1)
    assert draft["draft"] == {"assessment_form": {"summary": "within policy"}}
    assert draft["user_id"] == "controller@example.com"
    assert draft["input"] == {"expense_form.amount": 120, "expense_form.reason": "taxi"}
    await service.complete_task("default", draft["id"], {"assessment_form": {"summary": "ok"}})
    approve = await _todo(db, inst.id, "approve", 1)
    await service.complete_task(
        "default",
        approve["id"],
        {"approval_form": {"decision": "reject", "comment": "please reassess the receipt"}},
    )
    again = await _todo(db, inst.id, "assess", 2)  # the judge sent it back
    await service.complete_task("default", again["id"], {"assessment_form": {"summary": "fine"}})
    approve = await _todo(db, inst.id, "approve", 2)
    await service.complete_task(
        "default", approve["id"], {"approval_form": {"decision": "approve", "comment": "ok"}}
    )

    async def completed() -> bool:
        return (await service.get("default", inst.id)).status is InstanceStatus.COMPLETED

    await wait_until(completed, 20)
    inst = await service.get("default", inst.id)
    assert inst.variables["payment"] == "ordered"
    assert inst.variables["approval_form"]["decision"] == "approve"
    # The second decision needs no verdict: the first flow (by priority) holds.
    assert llm.judged == 1 and llm.steps == ["assess", "assess", "pay"]
    lines = await service.history("default", inst.id)
    decisions = [ln for ln in lines if ln.kind == "gateway_decision"]
    assert len(decisions) == 2 and "read the comment" in json.dumps(decisions[0].data)
    assert lines[-1].kind == "instance_completed"
    rows = await tasks_of(db, inst.id)
    assert sum(1 for r in rows if r["step_event"] is not None) == 1
