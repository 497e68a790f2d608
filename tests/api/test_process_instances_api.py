"""Process instances over HTTP against a real API process: start from a published
definition, the worklist, completing people's work items, history, cancel, messages,
incidents, migration, ProcessGPT's ``/complete``, and the refusals (each changes nothing)."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from typing import Any

import httpx

from processgpt.db.database import Database
from tests.api.conftest import Api
from tests.api.test_tasks_api import error_code

FORMS = {
    "request_form": {"fields": [{"key": "amount", "text": "Amount", "type": "number"}]},
    "approval_form": {
        "fields": [
            {"key": "decision", "type": "select", "options": ["approve", "reject"]},
            {"key": "comment", "type": "textarea"},
        ]
    },
}


def purchase(decision_default: bool = True) -> dict[str, Any]:
    """A clerk files a request, a manager decides; approved requests wait for the message
    ``payment``, rejected ones end (without ``decision_default``: only those over 100; a
    smaller rejected one is an incident, no flow applies)."""
    sequences = [
        {"id": "f1", "source": "start", "target": "request"},
        {"id": "f2", "source": "request", "target": "approve"},
        {"id": "f3", "source": "approve", "target": "decide"},
        {"id": "f_yes", "source": "decide", "target": "paid",
         "properties": json.dumps({"conditionFunction": 'approval_form.decision == "approve"'})},
        {"id": "f5", "source": "paid", "target": "end"},
    ]  # fmt: skip
    no = {"conditionFunction": 'approval_form.decision == "reject" && request_form.amount > 100'}
    sequences.append(
        {
            "id": "f_no",
            "source": "decide",
            "target": "rejected",
            "properties": json.dumps({"default": True} if decision_default else no),
        }
    )
    return {
        "processDefinitionId": "purchase",
        "processDefinitionName": "Purchase",
        "data": [{"name": "note", "type": "Text"}],
        "roles": [
            {"name": "clerk", "default": "clerk@example.com"},
            {"name": "manager", "default": "manager@example.com"},
        ],
        "events": [
            {"id": "start", "type": "startEvent"},
            {
                "id": "paid",
                "type": "intermediateCatchEvent",
                "name": "payment",
                "definitionType": "bpmn:messageEventDefinition",
            },
            {"id": "end", "type": "endEvent"},
            {"id": "rejected", "type": "endEvent"},
        ],
        "gateways": [{"id": "decide", "type": "exclusiveGateway"}],
        "activities": [
            {
                "id": "request",
                "name": "File the request",
                "type": "userTask",
                "role": "clerk",
                "tool": "formHandler:request_form",
                "outputData": ["request_form.amount"],
            },
            {
                "id": "approve",
                "name": "Decide",
                "type": "userTask",
                "role": "manager",
                "tool": "formHandler:approval_form",
                "outputData": ["approval_form.decision"],
            },
        ],
        "sequences": sequences,
    }


async def publish(client: httpx.AsyncClient, definition: dict[str, Any]) -> int:
    response = await client.post(
        "/v1/process-definitions",
        json={"id": definition["processDefinitionId"], "definition": definition, "forms": FORMS},
    )
    assert response.status_code in (200, 201), response.text
    return int(response.json()["version"])


async def start_def(client: httpx.AsyncClient, proc_def_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/processes", json={"proc_def_id": proc_def_id, **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def start(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return await start_def(client, "purchase", **body)


async def complete(
    client: httpx.AsyncClient, task_id: str, output: dict[str, Any], **extra: Any
) -> httpx.Response:
    return await client.post(f"/v1/tasks/{task_id}/complete", json={"output": output, **extra})


async def open_task(client: httpx.AsyncClient, proc_id: str) -> dict[str, Any]:
    (task,) = (await client.get(f"/v1/processes/{proc_id}")).json()["open_tasks"]
    return task  # type: ignore[no-any-return]


async def test_start_work_through_the_worklist_and_complete(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        view = await start(
            client,
            name="pens",
            variables={"note": "blue"},
            roles={"manager": "lee@example.com"},
            idempotency_key="order-7",
        )
        proc_id = view["id"]
        assert (view["status"], view["version"], view["proc_def_id"]) == ("RUNNING", 1, "purchase")
        assert view["current_activity_ids"] == ["request"]
        assert view["variables"] == {"note": "blue"}
        (todo,) = view["open_tasks"]
        assert (todo["status"], todo["activity_id"], todo["role"]) == ("TODO", "request", "clerk")
        assert todo["user_id"] == "clerk@example.com" and todo["proc_inst_id"] == proc_id
        assert view["process"]["proc_inst_id"] == proc_id and "state" not in view["process"]

        again = await client.post(
            "/v1/processes",
            json={"proc_def_id": "purchase", "variables": {"note": "red"}},
            headers={"Idempotency-Key": "order-7"},
        )
        assert again.status_code == 200 and again.json()["id"] == proc_id

        mine = (await client.get("/v1/worklist", params={"user": "clerk@example.com"})).json()
        assert [t["id"] for t in mine["items"]] == [todo["id"]]
        assert (await client.get("/v1/worklist", params={"role": "manager"})).json()["items"] == []

        done = await complete(client, todo["id"], {"request_form": {"amount": 12}})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "DONE"
        repeated = await complete(client, todo["id"], {"request_form": {"amount": 12}})
        assert repeated.status_code == 409 and error_code(repeated) == "invalid_state"

        approve = await open_task(client, proc_id)
        assert approve["user_id"] == "lee@example.com"  # the role binding given at start
        by_role = (await client.get("/v1/worklist", params={"role": "manager"})).json()["items"]
        assert [t["id"] for t in by_role] == [approve["id"]]
        first = await complete(
            client,
            approve["id"],
            {"approval_form": {"decision": "approve"}},
            idempotency_key="decide-1",
        )
        assert first.status_code == 200, first.text
        same = await client.post(
            f"/v1/tasks/{approve['id']}/complete",
            json={"output": {"approval_form": {"decision": "approve"}}},
            headers={"Idempotency-Key": "decide-1"},
        )
        assert same.status_code == 200 and same.json()["id"] == approve["id"]

        waiting = (await client.get(f"/v1/processes/{proc_id}")).json()
        assert waiting["status"] == "RUNNING" and waiting["current_activity_ids"] == ["paid"]
        assert waiting["open_tasks"] == []
        assert waiting["variables"]["approval_form"] == {"decision": "approve"}

        paid = await client.post(f"/v1/processes/{proc_id}/messages/payment", json={"ref": 9})
        assert paid.status_code == 200, paid.text
        ended = paid.json()
        assert ended["status"] == "COMPLETED" and ended["end_date"] is not None
        assert ended["variables"]["ref"] == 9
        assert [t["status"] for t in ended["tasks"]] == ["DONE", "DONE"]

        history = (await client.get(f"/v1/processes/{proc_id}/history")).json()
        lines = history["items"]
        assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
        assert history["next_after"] == len(lines)
        kinds = [line["kind"] for line in lines]
        assert kinds[0] == "instance_started" and kinds[-1] == "instance_completed"
        for kind in ("step_started", "step_completed", "gateway_decision", "message_received"):
            assert kind in kinds, kinds
        decision = next(line for line in lines if line["kind"] == "gateway_decision")
        assert decision["node_id"] == "decide"
        page = (await client.get(f"/v1/processes/{proc_id}/history?after=2&limit=2")).json()
        assert [line["seq"] for line in page["items"]] == [3, 4]

        listed = (await client.get("/v1/processes", params={"proc_def_id": "purchase"})).json()
        assert [p["id"] for p in listed["items"]] == [proc_id]
        running = await client.get("/v1/processes", params={"status": "RUNNING"})
        assert running.json()["items"] == []
        finished = await client.post(f"/v1/processes/{proc_id}/cancel", json={"reason": "late"})
        assert finished.status_code == 409 and error_code(finished) == "invalid_state"


async def test_pages_of_instances_and_worklist(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        started = [(await start(client, name=f"n{i}"))["id"] for i in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "status": "RUNNING"}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/processes", params=params)).json()
            seen += [p["id"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(started))
        items: list[str] = []
        cursor = None
        while True:
            params = {"limit": 3, "role": "clerk", **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/worklist", params=params)).json()
            items += [t["proc_inst_id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert items == list(reversed(started))
        bad = await client.get("/v1/processes", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422 and error_code(bad) == "invalid_input"


async def test_cancel_ends_the_instance_and_its_open_work(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        proc_id = (await start(client))["id"]
        cancelled = await client.post(f"/v1/processes/{proc_id}/cancel", json={"reason": "dup"})
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["status"] == "CANCELLED" and body["open_tasks"] == []
        assert [t["status"] for t in body["tasks"]] == ["CANCELLED"]
        assert (await client.get("/v1/worklist")).json()["items"] == []
        kinds = [
            line["kind"]
            for line in (await client.get(f"/v1/processes/{proc_id}/history")).json()["items"]
        ]
        assert kinds[-1] == "instance_cancelled"


async def test_an_incident_is_listed_and_resolved(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase(decision_default=False))
        proc_id = (await start(client))["id"]
        request = await open_task(client, proc_id)
        filed = await complete(client, request["id"], {"request_form": {"amount": 5}})
        assert filed.status_code == 200, filed.text
        approve = await open_task(client, proc_id)
        done = await complete(client, approve["id"], {"approval_form": {"decision": "reject"}})
        assert done.status_code == 200, done.text

        stuck = (await client.get(f"/v1/processes/{proc_id}")).json()
        assert stuck["status"] == "INCIDENT"
        (incident,) = (await client.get(f"/v1/processes/{proc_id}/incidents")).json()
        assert (incident["kind"], incident["node_id"]) == ("no_flow", "decide")
        assert incident == stuck["incidents"][0]

        unknown = await client.post(f"/v1/processes/{proc_id}/incidents/nope/resolve")
        assert unknown.status_code == 409 and error_code(unknown) == "invalid_state"
        resolved = await client.post(
            f"/v1/processes/{proc_id}/incidents/{incident['id']}/resolve",
            json={"variables": {"request_form": {"amount": 500}}},
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "COMPLETED"
        assert resolved.json()["incidents"] == []
        assert (await client.get(f"/v1/processes/{proc_id}/incidents")).json() == []


async def test_migrate_moves_the_waiting_step(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        proc_id = (await start(client))["id"]
        v2 = copy.deepcopy(purchase())
        for activity in v2["activities"]:
            if activity["id"] == "request":
                activity["id"] = "request_v2"
        for flow in v2["sequences"]:
            for end in ("source", "target"):
                if flow[end] == "request":
                    flow[end] = "request_v2"
        assert await publish(client, v2) == 2

        missing = await client.post(f"/v1/processes/{proc_id}/migrate", json={"to_version": 9})
        assert missing.status_code == 404 and error_code(missing) == "definition_not_found"
        moved = await client.post(
            f"/v1/processes/{proc_id}/migrate",
            json={"to_version": 2, "mapping": {"request": "request_v2"}},
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["version"], moved.json()["current_activity_ids"]) == (
            2,
            ["request_v2"],
        )
        lines = (await client.get(f"/v1/processes/{proc_id}/history")).json()["items"]
        assert "migrated" in [line["kind"] for line in lines]
        # a new start pins the latest version; an explicit one stays
        assert (await start(client))["version"] == 2
        assert (await start(client, version=1))["current_activity_ids"] == ["request"]


async def test_processgpt_complete_starts_an_instance(api: Api) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        theirs = await client.post(
            "/complete", json={"process_definition_id": "purchase", "input": {"note": "a"}}
        )
        assert theirs.status_code == 201, theirs.text
        assert theirs.json()["variables"] == {"note": "a"}
        ours = await client.post(
            "/complete",
            json={"proc_def_id": "purchase", "data": {"note": "b"}, "idempotency_key": "k"},
        )
        assert ours.status_code == 201 and ours.json()["current_activity_ids"] == ["request"]
        again = await client.post(
            "/complete", json={"proc_def_id": "purchase", "variables": {}, "idempotency_key": "k"}
        )
        assert again.status_code == 200 and again.json()["id"] == ours.json()["id"]
        for body in (
            {"input": {}},  # no id
            {"proc_def_id": "purchase", "process_definition_id": "purchase"},
            {"proc_def_id": "purchase", "input": {}, "data": {}},
            {"proc_def_id": "purchase", "extra": 1},
            {"process_definition_id": ""},
            {"proc_def_id": "", "version": None},
        ):
            refused = await client.post("/complete", json=body)
            assert refused.status_code == 422, (body, refused.text)
        unknown = await client.post("/complete", json={"proc_def_id": "nothing"})
        assert unknown.status_code == 404 and error_code(unknown) == "definition_not_found"
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.post("/complete", json={"proc_def_id": "x"})).status_code == 401


async def test_refusals_change_nothing(api: Api, db: Database) -> None:
    async with api.client() as client:
        await publish(client, purchase())
        view = await start(client)
        proc_id, todo = view["id"], view["open_tasks"][0]
        before = await db.fetchval("SELECT count(*) FROM process_history")
        unknown = str(uuid.uuid4())
        cases: list[tuple[str, str, Any, int, str]] = [
            ("GET", "/v1/processes/not-a-uuid", None, 422, "invalid_input"),
            ("GET", f"/v1/processes/{unknown}", None, 404, "process_not_found"),
            ("GET", f"/v1/processes/{unknown}/history", None, 404, "process_not_found"),
            ("GET", f"/v1/processes/{unknown}/incidents", None, 404, "process_not_found"),
            ("POST", f"/v1/processes/{unknown}/cancel", {}, 404, "process_not_found"),
            ("POST", f"/v1/tasks/{unknown}/complete", {"output": {}}, 404, "task_not_found"),
            ("POST", "/v1/tasks/nope/complete", {"output": {}}, 422, "invalid_input"),
            ("POST", f"/v1/tasks/{todo['id']}/complete", {"output": []}, 422, "invalid_input"),
            ("POST", f"/v1/tasks/{todo['id']}/complete", {}, 422, "invalid_input"),
            # form data that does not fit the form
            ("POST", f"/v1/tasks/{todo['id']}/complete",
             {"output": {"request_form": {"amount": "lots"}}}, 422, "invalid_input"),
            ("POST", f"/v1/tasks/{todo['id']}/complete",
             {"output": {"colour": "red"}}, 422, "invalid_input"),
            ("POST", f"/v1/processes/{proc_id}/messages/nobody-waits", {}, 409, "invalid_state"),
            ("POST", f"/v1/processes/{proc_id}/migrate", {"to_version": 0}, 422, "invalid_input"),
            ("POST", "/v1/processes", {"proc_def_id": "nothing"}, 404, "definition_not_found"),
            ("POST", "/v1/processes", {"name": "no definition"}, 422, "invalid_input"),
            ("POST", "/v1/processes",
             {"proc_def_id": "purchase", "version": 7}, 404, "definition_not_found"),
            ("POST", "/v1/processes",
             {"task": {"agent_orch": "demo"}, "roles": {"a": "b"}}, 422, "invalid_input"),
            ("POST", "/v1/processes", {"proc_def_id": "purchase", "roles": {"r": 1}},
             422, "invalid_input"),
            ("GET", "/v1/processes?status=DONE", None, 422, "invalid_input"),
            ("GET", "/v1/worklist?limit=0", None, 422, "invalid_input"),
        ]  # fmt: skip
        for method, path, body, status, code in cases:
            response = await client.request(method, path, json=body)
            assert (response.status_code, error_code(response)) == (status, code), (
                method,
                path,
                response.text,
            )
        conflict = await client.post(
            "/v1/processes",
            json={"proc_def_id": "purchase", "idempotency_key": "a"},
            headers={"Idempotency-Key": "b"},
        )
        assert conflict.status_code == 422
        assert await db.fetchval("SELECT count(*) FROM process_history") == before
        assert await db.fetchval("SELECT count(*) FROM bpm_proc_inst") == 1
        fresh = (await client.get(f"/v1/processes/{proc_id}")).json()
        assert fresh["open_tasks"] == [todo] and fresh["variables"] == {}

    async with api.client(api.key_b) as other:  # another tenant's instance and task: 404
        for method, path, body in (
            ("GET", f"/v1/processes/{proc_id}", None),
            ("GET", f"/v1/processes/{proc_id}/history", None),
            ("GET", f"/v1/processes/{proc_id}/incidents", None),
            ("GET", f"/v1/processes/{proc_id}/stream", None),
            ("POST", f"/v1/processes/{proc_id}/cancel", {}),
            ("POST", f"/v1/processes/{proc_id}/messages/payment", {}),
            ("POST", f"/v1/processes/{proc_id}/migrate", {"to_version": 1}),
            ("POST", f"/v1/processes/{proc_id}/incidents/i1/resolve", {}),
            ("POST", f"/v1/tasks/{todo['id']}/complete", {"output": {"amount": 1}}),
        ):
            response = await other.request(method, path, json=body)
            assert response.status_code == 404, (path, response.text)
        assert (await other.get("/v1/processes")).json()["items"] == []
        assert (await other.get("/v1/worklist")).json()["items"] == []
        theirs = await other.post("/v1/processes", json={"proc_def_id": "purchase"})
        assert theirs.status_code == 404 and error_code(theirs) == "definition_not_found"
    async with api.client() as client:
        assert (await open_task(client, proc_id))["status"] == "TODO"


def agentic() -> dict[str, Any]:
    """An agent's step (the ``demo`` agent completes it), then a step the agent drafts and a
    person completes."""
    return {
        "processDefinitionId": "agentic",
        "roles": [{"name": "clerk", "default": "clerk@example.com"}],
        "events": [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"}],
        "activities": [
            {"id": "summarise", "type": "serviceTask", "agent": "demo", "agentMode": "complete",
             "instruction": "summarise the note", "outputData": ["upper"]},
            {"id": "review", "type": "userTask", "role": "clerk", "agent": "demo",
             "agentMode": "draft", "instruction": "draft the review"},
        ],
        "sequences": [
            {"id": "f1", "source": "start", "target": "summarise"},
            {"id": "f2", "source": "summarise", "target": "review"},
            {"id": "f3", "source": "review", "target": "end"},
        ],
    }  # fmt: skip


async def test_agent_steps_run_on_workers_and_drafts_wait_for_a_person(api: Api) -> None:
    async with api.client() as client:
        published = await client.post(
            "/v1/process-definitions", json={"id": "agentic", "definition": agentic()}
        )
        assert published.status_code == 201, published.text
        view = await start_def(client, "agentic")
        agent_task = view["tasks"][0]  # a worker may have taken it already
        assert (agent_task["agent_orch"], agent_task["activity_id"]) == ("demo", "summarise")
        assert agent_task["query"] == "summarise the note"
        for _ in range(300):  # the demo worker runs it; its DONE and the next step commit together
            items = (await client.get("/v1/worklist", params={"role": "clerk"})).json()["items"]
            if items:
                break
            await asyncio.sleep(0.1)
        (draft,) = items
        assert draft["activity_id"] == "review" and draft["status"] == "TODO"
        assert draft["draft"]["upper"] == "DRAFT THE REVIEW"
        inst = (await client.get(f"/v1/processes/{view['id']}")).json()
        assert inst["variables"]["upper"] == "SUMMARISE THE NOTE"
        assert inst["current_activity_ids"] == ["review"]
        done = await complete(client, draft["id"], {"verdict": "fine"})
        assert done.status_code == 200, done.text
        ended = (await client.get(f"/v1/processes/{view['id']}")).json()
        assert ended["status"] == "COMPLETED"
        assert ended["variables"]["verdict"] == "fine"
        kinds = [
            (line["kind"], line["node_id"])
            for line in (await client.get(f"/v1/processes/{view['id']}/history")).json()["items"]
        ]
        completed = [node for kind, node in kinds if kind == "step_completed"]
        assert completed == ["summarise", "review"]


async def test_a_childs_incident_shows_on_its_parent(api: Api) -> None:
    child = {
        "processDefinitionId": "kid",
        "data": [{"name": "go", "type": "Boolean"}],
        "events": [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"},
                   {"id": "stop", "type": "endEvent"}],
        "gateways": [{"id": "check", "type": "exclusiveGateway"}],
        "activities": [],
        "sequences": [
            {"id": "f1", "source": "start", "target": "check"},
            {"id": "f2", "source": "check", "target": "end",
             "properties": json.dumps({"conditionFunction": "go == true"})},
            {"id": "f3", "source": "check", "target": "stop",
             "properties": json.dumps({"conditionFunction": "go == false"})},
        ],
    }  # fmt: skip
    parent = {
        "processDefinitionId": "parent",
        "events": [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"}],
        "activities": [{"id": "call", "type": "callActivity", "calledElement": "kid"}],
        "sequences": [
            {"id": "f1", "source": "start", "target": "call"},
            {"id": "f2", "source": "call", "target": "end"},
        ],
    }
    async with api.client() as client:
        for definition in (child, parent):
            await publish(client, definition)
        view = await start_def(client, "parent")
        assert view["current_activity_ids"] == ["call"] and view["incidents"] == []
        (found,) = view["child_incidents"]
        assert found["node_id"] == "check" and found["kind"] in ("no_flow", "condition")
        (kid,) = [
            p for p in (await client.get("/v1/processes")).json()["items"] if p["id"] != view["id"]
        ]
        assert kid["id"] == found["child_id"] and kid["status"] == "INCIDENT"
        resolved = await client.post(
            f"/v1/processes/{kid['id']}/incidents/{found['id']}/resolve",
            json={"variables": {"go": True}},
        )
        assert resolved.status_code == 200, resolved.text
        after = (await client.get(f"/v1/processes/{view['id']}")).json()
        assert after["status"] == "COMPLETED" and after["child_incidents"] == []
