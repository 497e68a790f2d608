"""``/v1/process-definitions`` over HTTP against a real API process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import Api
from tests.api.test_tasks_api import error_code

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "processes"
SAMPLES = Path(__file__).resolve().parents[1] / "process" / "bpmn"


def leave_request(condition: str = "days > 5") -> dict[str, Any]:
    return {
        "processDefinitionId": "leave_request",
        "processDefinitionName": "Leave request",
        "data": [{"name": "days", "type": "Number"}],
        "roles": [{"name": "manager", "default": "manager@example.com"}],
        "events": [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"}],
        "gateways": [{"id": "long", "type": "exclusiveGateway"}],
        "activities": [
            {"id": "ask", "type": "userTask", "role": "manager"},
            {"id": "hr", "type": "userTask", "role": "manager", "agent": "llm",
             "agentMode": "draft"},
        ],
        "sequences": [
            {"id": "f1", "source": "start", "target": "ask"},
            {"id": "f2", "source": "ask", "target": "long"},
            {"id": "f3", "source": "long", "target": "hr",
             "properties": json.dumps({"conditionFunction": condition})},
            {"id": "f4", "source": "long", "target": "end", "properties": '{"default": true}'},
            {"id": "f5", "source": "hr", "target": "end"},
        ],
    }  # fmt: skip


async def test_publish_read_and_version(api: Api) -> None:
    async with api.client() as client:
        first = await client.post(
            "/v1/process-definitions", json={"id": "leave_request", "definition": leave_request()}
        )
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["id"], body["version"], body["name"], body["format"], body["created"]) == (
            "leave_request",
            1,
            "Leave request",
            "processgpt_json",
            True,
        )
        same = await client.post(
            "/v1/process-definitions", json={"id": "leave_request", "definition": leave_request()}
        )
        assert same.status_code == 200, same.text
        assert same.json() == {**body, "created": False}
        second = await client.post(
            "/v1/process-definitions",
            json={"id": "leave_request", "definition": leave_request("days >= 10")},
        )
        assert second.status_code == 201 and second.json()["version"] == 2

        listed = await client.get("/v1/process-definitions")
        assert listed.status_code == 200
        assert [(d["id"], d["version"]) for d in listed.json()["items"]] == [("leave_request", 2)]
        detail = (await client.get("/v1/process-definitions/leave_request")).json()
        assert detail["latest_version"] == 2
        assert [v["version"] for v in detail["versions"]] == [1, 2]
        v1 = (await client.get("/v1/process-definitions/leave_request/versions/1")).json()
        assert v1["source"] == leave_request()  # the source as published
        flows = {f["id"]: f for f in v1["graph"]["flows"]}
        assert flows["f3"]["condition"] == "days > 5"
        assert v1["graph"]["nodes"][0] == {"id": "start", "kind": "start", "name": ""}

        missing = await client.get("/v1/process-definitions/leave_request/versions/3")
        assert missing.status_code == 404 and error_code(missing) == "definition_not_found"
        unknown = await client.get("/v1/process-definitions/nothing")
        assert unknown.status_code == 404 and error_code(unknown) == "definition_not_found"

    async with api.client(api.key_b) as other:  # another tenant sees nothing
        assert (await other.get("/v1/process-definitions")).json()["items"] == []
        hidden = await other.get("/v1/process-definitions/leave_request")
        assert hidden.status_code == 404


async def test_invalid_definitions_list_every_problem(api: Api, db: Database) -> None:
    bad = leave_request("__import__('os').system('id')")
    bad["sequences"].append({"id": "dangling", "source": "ask", "target": "nowhere"})
    bad["activities"].append({"id": "island", "type": "userTask"})
    async with api.client() as client:
        response = await client.post(
            "/v1/process-definitions", json={"id": "leave_request", "definition": bad}
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "definition_invalid"
        problems = {(d["id"], d["problem"]) for d in error["details"]}
        assert ("dangling", "target 'nowhere' does not exist") in problems
        assert ("island", "not reachable from a start event") in problems
        assert any(i == "f3" and "'__'" in p for i, p in problems)
        assert all(f"{d['id']}: {d['problem']}" in error["message"] for d in error["details"])

        bpmn = '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
        bpmn += '<bpmn:process id="p"><bpmn:sendTask id="s"/></bpmn:process></bpmn:definitions>'
        refused = await client.post("/v1/process-definitions", json={"id": "p", "bpmn": bpmn})
        assert refused.status_code == 422
        assert {"id": "s", "problem": "unsupported BPMN element sendTask"} in refused.json()[
            "error"
        ]["details"]

        for body in (
            {"id": "x"},  # neither
            {"id": "x", "definition": leave_request(), "bpmn": "<x/>"},  # both
            {"id": "no spaces", "definition": leave_request()},
            {"id": "x", "definition": leave_request(), "extra": 1},
            {"id": "x", "definition": []},
        ):
            answer = await client.post("/v1/process-definitions", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert error_code(answer) == "invalid_input", answer.text
        xml_bomb = (
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            "<d>&b;</d>"
        )
        bomb = await client.post("/v1/process-definitions", json={"id": "x", "bpmn": xml_bomb})
        assert bomb.status_code == 422 and error_code(bomb) == "definition_invalid"
    assert await db.fetchval("SELECT count(*) FROM proc_def") == 0


async def test_publishing_needs_an_admin_reading_a_member(api: Api, db: Database) -> None:
    member = (await ApiKeyRepository(db).create("acme", role=Role.MEMBER)).key
    async with api.client(member) as client:
        refused = await client.post(
            "/v1/process-definitions", json={"id": "leave_request", "definition": leave_request()}
        )
        assert refused.status_code == 403 and error_code(refused) == "forbidden"
    async with api.client() as admin:
        created = await admin.post(
            "/v1/process-definitions", json={"id": "leave_request", "definition": leave_request()}
        )
        assert created.status_code == 201
    async with api.client(member) as client:
        assert (await client.get("/v1/process-definitions/leave_request")).status_code == 200


async def test_the_examples_and_samples_publish(api: Api) -> None:
    def example(name: str) -> Any:
        return json.loads((EXAMPLES / name).read_text())

    bodies: list[dict[str, Any]] = [
        {
            "id": "expense_approval",
            "definition": example("expense_approval.json"),
            "forms": example("expense_approval.forms.json"),
        },
        {"id": "expense_approval_bpmn", "bpmn": (EXAMPLES / "expense_approval.bpmn").read_text()},
        {"id": "contract_review", "definition": example("parallel_review.json")},
        {"id": "support_escalation", "definition": example("timer_escalation.json")},
        {"id": "call_activity_child", "bpmn": (SAMPLES / "call_activity_child.bpmn").read_text()},
        {"id": "call_activity", "bpmn": (SAMPLES / "call_activity.bpmn").read_text()},
    ]
    async with api.client() as client:
        for body in bodies:
            response = await client.post("/v1/process-definitions", json=body)
            assert response.status_code == 201, (body["id"], response.text)
        v = (await client.get("/v1/process-definitions/expense_approval_bpmn/versions/1")).json()
        assert v["format"] == "bpmn" and v["source"].startswith("<?xml")
        assert {r["name"] for r in v["graph"]["roles"]} == {"employee", "controller", "manager"}


async def test_a_call_to_an_unpublished_definition_is_refused(api: Api) -> None:
    async with api.client() as client:
        response = await client.post(
            "/v1/process-definitions",
            json={"id": "parent", "bpmn": (SAMPLES / "call_activity.bpmn").read_text()},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"] == [
            {
                "id": "call_activity_child",
                "problem": "a call activity calls this definition, which is not published",
            }
        ]


async def test_errors_of_other_routes_have_no_details(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anon:
        body = (await anon.get("/v1/process-definitions")).json()
    assert body == {"error": {"code": "unauthorized", "message": body["error"]["message"]}}
