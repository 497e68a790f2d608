"""The expense approval example, end to end with real processes: a ``processgpt api``
process, a ``processgpt worker --agent llm`` process, the scripted OpenAI-compatible server as
the model (the only stand-in), and the definition deployed with ``processgpt process deploy``
from ``examples/processes/``.

The story: an employee files the expense (a form, through the API); the ``llm`` agent drafts
the assessment (``agentMode: draft``) that the controller edits and completes; the manager
rejects it with a comment; the exclusive gateway routes on the form value (``decision ==
'approve'`` does not hold) and the text condition ("the manager's comment asks for a new
assessment") is judged by the ``llm`` agent in a judge task: it holds, so the step loops back
to the assessment; the second draft is completed, the manager approves, the gateway takes
the approved flow, the ``llm`` agent writes the payment order (``agentMode: complete``) and
the instance completes. The history has every step, both gateway decisions (the first with
the verdict's reasoning), and the variables hold the forms' values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.cli.conftest import run_cli
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess, api_url, wait_until

TENANT = "acme"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "processes"
EMPLOYEE = "emp@example.com"
CONTROLLER = "controller@example.com"
MANAGER = "manager@example.com"
EXPENSE = {"amount": 420, "reason": "train to Berlin for the customer workshop"}
FIRST_DRAFT = {"summary": "Rail travel, within the travel policy."}
SECOND_DRAFT = {"summary": "Rail travel in second class: within the travel policy (3.2)."}
COMMENT = "Please re-check the assessment against the new rail policy."
REASONING = "The manager asks to re-check the assessment: a new assessment is requested."


async def task_view(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    assert task["status"] != "FAILED", task
    return task


async def instance_view(client: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/processes/{instance_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] in ("RUNNING", "COMPLETED"), body["incidents"]
    return body


async def waiting_step(
    client: httpx.AsyncClient, instance_id: str, activity: str, activation: int = 1
) -> dict[str, Any]:
    """The person's work item of ``activity`` once it is TODO (agents may run first)."""

    async def found() -> dict[str, Any] | None:
        view = await instance_view(client, instance_id)
        for task in view["open_tasks"]:
            if (task["activity_id"], task["activation"], task["status"]) == (
                activity,
                activation,
                "TODO",
            ):
                return task  # type: ignore[no-any-return]
        return None

    task: dict[str, Any] = await wait_until(found, 60)
    return task


async def complete_step(
    client: httpx.AsyncClient, task_id: str, output: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(f"/v1/tasks/{task_id}/complete", json={"output": output})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "DONE"
    return body


async def history_lines(client: httpx.AsyncClient, instance_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/processes/{instance_id}/history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def llm_stack(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM
) -> tuple[str, str]:
    """A ``processgpt api`` process and a ``processgpt worker --agent llm`` process (the
    model: ``fake_llm``); the API's URL and an admin key of :data:`TENANT`."""
    key = (await ApiKeyRepository(db).create(TENANT, role=Role.ADMIN)).key
    api = start_process("api", env={"PROCESSGPT_API_PORT": "0"})
    worker = start_process(
        "worker",
        "--agent",
        "llm",
        "--concurrency",
        "4",
        env={
            "PROCESSGPT_LLM_BASE_URL": fake_llm.base_url,
            "PROCESSGPT_LLM_API_KEY": "sk-e2e-test",
            "PROCESSGPT_LLM_MODEL": "e2e-model",
        },
    )
    url = await api_url(api)
    await worker.wait_for_log("worker started")
    return url, key


async def test_expense_approval_with_a_draft_a_form_a_gateway_and_a_judged_condition(
    db: Database, start_process: StartProcess, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    url, key = await llm_stack(db, start_process, fake_llm)

    # -- deploy the example as a user does ---------------------------------------------------
    deployed = await run_cli(
        "process", "deploy", str(EXAMPLES / "expense_approval.json"),
        "--forms", str(EXAMPLES / "expense_approval.forms.json"),
        "--url", url, "--api-key", key, data_dir=tmp_path,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    assert "expense_approval version 1 published" in deployed.stdout

    fake_llm.add(
        # The judge's question names the text condition; the drafts and the payment order
        # are asked for by their steps' instructions.
        Turn(
            text=json.dumps({"verdicts": {"f_unclear": {"holds": True, "reasoning": REASONING}}}),
            match="asks for a new assessment",
        ),
        Turn(text=json.dumps(FIRST_DRAFT), match="draft an assessment"),
        Turn(text=json.dumps(SECOND_DRAFT), match="draft an assessment"),
        Turn(text="Payment order: 420 EUR to the employee's account.", match="payment order"),
    )

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        started = await client.post(
            "/v1/processes",
            json={"proc_def_id": "expense_approval", "roles": {"employee": EMPLOYEE}},
        )
        assert started.status_code == 201, started.text
        instance_id = started.json()["id"]

        # -- the employee files the expense: a form, validated -------------------------------
        filing = await waiting_step(client, instance_id, "file_expense")
        assert filing["user_id"] == EMPLOYEE
        assert filing["tool"] == "formHandler:expense_form"
        bad = await client.post(
            f"/v1/tasks/{filing['id']}/complete",
            json={"output": {"expense_form": {"amount": "a lot", "reason": 3}}},
        )
        assert bad.status_code == 422, bad.text
        assert (await task_view(client, filing["id"]))["status"] == "TODO"  # nothing changed
        await complete_step(client, filing["id"], {"expense_form": EXPENSE})

        # -- the llm agent drafts the assessment; the controller edits and completes it -------
        assessing = await waiting_step(client, instance_id, "assess")
        assert assessing["user_id"] == CONTROLLER
        assert assessing["draft"] == {"assessment_form": FIRST_DRAFT}
        edited = {"summary": FIRST_DRAFT["summary"] + " Receipt checked."}
        await complete_step(client, assessing["id"], {"assessment_form": edited})

        # -- the manager rejects with a comment (found in the manager's worklist) -------------
        worklist = await client.get("/v1/worklist", params={"user": MANAGER})
        assert worklist.status_code == 200, worklist.text
        [approval] = [t for t in worklist.json()["items"] if t["activity_id"] == "approve"]
        await complete_step(
            client, approval["id"], {"approval_form": {"decision": "reject", "comment": COMMENT}}
        )

        # -- decision != approve; the text condition is judged by the llm agent: it holds ----
        second = await waiting_step(client, instance_id, "assess", activation=2)
        assert second["draft"] == {"assessment_form": SECOND_DRAFT}
        await complete_step(client, second["id"], {"assessment_form": SECOND_DRAFT})
        approval = await waiting_step(client, instance_id, "approve", activation=2)
        await complete_step(
            client, approval["id"], {"approval_form": {"decision": "approve", "comment": "ok"}}
        )

        # -- the approved flow: the llm agent writes the payment order; the instance ends ----
        async def completed() -> dict[str, Any] | None:
            view = await instance_view(client, instance_id)
            return view if view["status"] == "COMPLETED" else None

        final = await wait_until(completed, 60)
        history = await history_lines(client, instance_id)

    # -- the history: every step, in order; both gateway decisions -------------------------------
    steps = [(h["node_id"], h["activation"]) for h in history if h["kind"] == "step_completed"]
    assert steps == [
        ("file_expense", 1),
        ("assess", 1),
        ("approve", 1),
        ("assess", 2),
        ("approve", 2),
        ("pay", 1),
    ]
    decisions = [h for h in history if h["kind"] == "gateway_decision"]
    assert [(d["node_id"], [t["flow"] for t in d["data"]["taken"]]) for d in decisions] == [
        ("decision", ["f_unclear"]),
        ("decision", ["f_approved"]),
    ]
    first = decisions[0]["data"]
    assert first["taken"][0]["why"] == "verdict"
    judged = next(e for e in first["evaluated"] if e["flow"] == "f_unclear")
    assert REASONING in json.dumps(judged)
    assert decisions[1]["data"]["taken"][0]["why"] == "condition"
    assert history[-1]["kind"] == "instance_completed"

    # -- the variables: the forms' values as the people completed them ---------------------------
    variables = final["variables"]
    assert variables["expense_form"] == EXPENSE
    assert variables["assessment_form"] == SECOND_DRAFT
    assert variables["approval_form"] == {"decision": "approve", "comment": "ok"}
    assert final["current_activity_ids"] == []
    assert final["end_date"] is not None

    # -- what the model was asked: two drafts, one judgement, one payment order ------------------
    assert len(fake_llm.requests) == 4
    assert fake_llm.script == []
