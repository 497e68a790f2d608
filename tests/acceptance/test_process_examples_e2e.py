"""The other two examples of ``examples/processes/`` run to their end with real processes
(``processgpt api``, ``processgpt worker --agent llm``, the scripted model): the parallel
review (an agent's branch and a person's branch joined before signing) and the support ticket
with its timer escalation (its durations shortened to a second, so the worker's timer loop
fires them while the test waits). The expense approval has a module of its own
(``test_process_approval_e2e.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from processgpt.db.database import Database
from tests.acceptance.test_process_approval_e2e import (
    complete_step,
    history_lines,
    instance_view,
    llm_stack,
    waiting_step,
)
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "processes"


async def _publish(client: httpx.AsyncClient, definition: dict[str, Any]) -> str:
    definition_id: str = definition["processDefinitionId"]
    response = await client.post(
        "/v1/process-definitions", json={"id": definition_id, "definition": definition}
    )
    assert response.status_code == 201, response.text
    return definition_id


async def _completed(client: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        view = await instance_view(client, instance_id)
        return view if view["status"] == "COMPLETED" else None

    view: dict[str, Any] = await wait_until(done, 60)
    return view


async def test_parallel_review_joins_an_agents_and_a_persons_branch(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM
) -> None:
    url, key = await llm_stack(db, start_process, fake_llm)
    fake_llm.add(Turn(text="Clause 7 deviates (liability cap): medium risk.", match="clauses"))
    definition = json.loads((EXAMPLES / "parallel_review.json").read_text())
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        definition_id = await _publish(client, definition)
        started = await client.post("/v1/processes", json={"proc_def_id": definition_id})
        assert started.status_code == 201, started.text
        instance_id = started.json()["id"]
        upload = await waiting_step(client, instance_id, "upload")
        assert upload["user_id"] == "sales@example.com"
        await complete_step(client, upload["id"], {"contract": "msa-2026.pdf"})
        finance = await waiting_step(client, instance_id, "finance_review")
        assert finance["user_id"] == "finance@example.com"

        # The agent's branch ends on its own; the join waits for the person's branch.
        async def legal_done() -> bool:
            view = await instance_view(client, instance_id)
            return any(
                t["activity_id"] == "legal_review" and t["status"] == "DONE" for t in view["tasks"]
            )

        await wait_until(legal_done, 60)
        view = await instance_view(client, instance_id)
        assert [t["activity_id"] for t in view["open_tasks"]] == ["finance_review"]
        await complete_step(client, finance["id"], {"budget_ok": True})
        sign = await waiting_step(client, instance_id, "sign")
        await complete_step(client, sign["id"], {"signed": True})
        final = await _completed(client, instance_id)
        history = await history_lines(client, instance_id)
    joins = [h for h in history if h["kind"] == "join_fired"]
    assert [h["node_id"] for h in joins] == ["join"]
    done = {h["node_id"] for h in history if h["kind"] == "step_completed"}
    assert done == {"upload", "legal_review", "finance_review", "sign"}
    assert final["variables"]["budget_ok"] is True
    assert len(fake_llm.requests) == 1


async def test_support_ticket_escalates_on_its_timer_and_closes_after_the_wait(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM
) -> None:
    url, key = await llm_stack(db, start_process, fake_llm)
    fake_llm.add(Turn(text="Restart the router, then try again.", match="knowledge base"))
    text = (EXAMPLES / "timer_escalation.json").read_text()
    assert "PT4H" in text and "P2D" in text
    definition = json.loads(text.replace("PT4H", "PT1S").replace("P2D", "PT1S"))
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        definition_id = await _publish(client, definition)
        started = await client.post("/v1/processes", json={"proc_def_id": definition_id})
        assert started.status_code == 201, started.text
        instance_id = started.json()["id"]
        # The agent drafts the answer; the non-interrupting timer tells the lead meanwhile.
        answer = await waiting_step(client, instance_id, "answer")
        assert answer["draft"] is not None
        escalate = await waiting_step(client, instance_id, "escalate")
        assert escalate["user_id"] == "support-lead@example.com"
        assert (await instance_view(client, instance_id))["status"] == "RUNNING"
        await complete_step(client, escalate["id"], {"noted": True})
        await complete_step(client, answer["id"], {"answer": "Restart the router."})
        close = await waiting_step(client, instance_id, "close")  # after the customer's wait
        await complete_step(client, close["id"], {"resolved": True})
        await _completed(client, instance_id)
        history = await history_lines(client, instance_id)
    kinds = [(h["kind"], h["node_id"]) for h in history]
    assert ("timer_fired", "wait_for_customer") in kinds
    fired = [h for h in history if h["kind"] == "timer_fired"]
    assert len(fired) == 2  # the escalation and the customer's wait, once each
    assert kinds.index(("step_completed", "answer")) < kinds.index(("step_completed", "close"))
