"""``/v1/schedules`` over HTTP against a real API process and worker processes: the
resource's life, validation codes, roles, tenant isolation, a tick fired by a worker, and the
schedules of a definition's timer start events."""

from __future__ import annotations

import json
from typing import Any

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import Api
from tests.api.test_tasks_api import error_code
from tests.support import wait_until

TASK = {"agent_orch": "demo", "query": "digest", "input": {"steps": 1}}


def body(**changes: Any) -> dict[str, Any]:
    return {"name": "digest", "cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin",
            "task": TASK, **changes}  # fmt: skip


async def test_create_list_get_patch_delete(api: Api) -> None:
    async with api.client() as client:
        made = await client.post("/v1/schedules", json=body())
        assert made.status_code == 201, made.text
        schedule = made.json()
        assert schedule["cron"] == "0 9 * * MON-FRI" and schedule["timezone"] == "Europe/Berlin"
        assert schedule["target"] == "task" and schedule["source"] == "api"
        assert schedule["task"]["agent_orch"] == "demo" and schedule["enabled"] is True
        assert schedule["next_run_at"] is not None and schedule["runs"] == 0
        sid = schedule["id"]

        listed = (await client.get("/v1/schedules")).json()
        assert [s["id"] for s in listed["items"]] == [sid]
        assert (await client.get(f"/v1/schedules/{sid}")).json() == schedule

        off = await client.patch(f"/v1/schedules/{sid}", json={"enabled": False})
        assert off.status_code == 200, off.text
        assert off.json()["enabled"] is False and off.json()["next_run_at"] is None
        on = await client.patch(f"/v1/schedules/{sid}", json={"enabled": True, "cron": "@daily"})
        assert on.json()["enabled"] is True and on.json()["cron"] == "0 0 * * *"
        assert on.json()["next_run_at"] is not None

        gone = await client.delete(f"/v1/schedules/{sid}")
        assert gone.status_code == 204
        missing = await client.get(f"/v1/schedules/{sid}")
        assert missing.status_code == 404 and error_code(missing) == "schedule_not_found"


async def test_bad_input_is_refused_with_stable_codes_and_changes_nothing(api: Api) -> None:
    async with api.client() as client:
        cases = [
            (body(cron="61 * * * *"), 422, "invalid_cron"),
            (body(cron="* * *"), 422, "invalid_cron"),
            (body(timezone="Mars/Olympus"), 422, "unknown_timezone"),
            (body(task={**TASK, "agent_orch": "nobody"}), 422, "unknown_agent"),
            (body(task={**TASK, "run_at": "2030-01-01T00:00:00Z"}), 422, "invalid_input"),
            (body(process={"proc_def_id": "nothing"}), 422, "invalid_input"),
            (body(task=None, process={"proc_def_id": "nothing"}), 422, "invalid_input"),
            (body(name="bad name"), 422, "invalid_input"),
            (body(name="a:b"), 422, "invalid_input"),
        ]
        for sent, status, code in cases:
            answer = await client.post("/v1/schedules", json=sent)
            assert (answer.status_code, error_code(answer)) == (status, code), sent
        assert (await client.get("/v1/schedules")).json()["items"] == []

        first = await client.post("/v1/schedules", json=body())
        assert first.status_code == 201
        taken = await client.post("/v1/schedules", json=body())
        assert taken.status_code == 409 and error_code(taken) == "name_taken"
        sid = first.json()["id"]
        bad = await client.patch(f"/v1/schedules/{sid}", json={"timezone": "Nowhere/Town"})
        assert bad.status_code == 422 and error_code(bad) == "unknown_timezone"
        bad = await client.patch(f"/v1/schedules/{sid}", json={"cron": "0 0 30 2 *"})
        assert bad.status_code == 422 and error_code(bad) == "invalid_cron"
        assert (await client.get(f"/v1/schedules/{sid}")).json() == first.json()


async def test_members_read_admins_change(api: Api, db: Database) -> None:
    member = (await ApiKeyRepository(db).create("acme", role=Role.MEMBER)).key
    async with api.client() as admin, api.client(member) as client:
        sid = (await admin.post("/v1/schedules", json=body())).json()["id"]
        assert (await client.get(f"/v1/schedules/{sid}")).status_code == 200
        refused = await client.post("/v1/schedules", json=body(name="other"))
        assert refused.status_code == 403 and error_code(refused) == "forbidden"
        for answer in (
            await client.patch(f"/v1/schedules/{sid}", json={"enabled": False}),
            await client.delete(f"/v1/schedules/{sid}"),
        ):
            assert answer.status_code == 403
        assert (await admin.get(f"/v1/schedules/{sid}")).json()["enabled"] is True


async def test_another_tenants_schedule_is_not_found(api: Api) -> None:
    async with api.client() as acme, api.client(api.key_b) as globex:
        sid = (await acme.post("/v1/schedules", json=body())).json()["id"]
        for answer in (
            await globex.get(f"/v1/schedules/{sid}"),
            await globex.patch(f"/v1/schedules/{sid}", json={"enabled": False}),
            await globex.delete(f"/v1/schedules/{sid}"),
        ):
            assert answer.status_code == 404 and error_code(answer) == "schedule_not_found"
        assert (await globex.get("/v1/schedules")).json()["items"] == []
        # The same name is free in another tenant.
        assert (await globex.post("/v1/schedules", json=body())).status_code == 201
        assert (await acme.get(f"/v1/schedules/{sid}")).json()["enabled"] is True


async def test_a_due_tick_queues_its_task_once_through_a_worker(api: Api, db: Database) -> None:
    async with api.client() as client:
        sid = (await client.post("/v1/schedules", json=body())).json()["id"]
        # Its time has come (as if Monday 09:00 in Berlin were now): the workers are told.
        await db.execute(
            "UPDATE schedules SET next_run_at = now() - interval '1 second' WHERE id = $1::uuid",
            sid,
        )
        await db.execute("SELECT pg_notify('processgpt_schedules', '')")

        async def fired() -> dict[str, Any] | None:
            got = (await client.get(f"/v1/schedules/{sid}")).json()
            return got if got["runs"] == 1 else None

        schedule = await wait_until(fired)
        assert schedule["last_error"] is None and schedule["last_run_at"] is not None
        tasks = (await client.get("/v1/tasks", params={"agent_orch": "demo"})).json()["items"]
        assert len(tasks) == 1 and tasks[0]["query"] == "digest"


def timer_start_definition(**timer: str) -> dict[str, Any]:
    return {
        "processDefinitionId": "nightly",
        "events": [
            {"id": "every_night", "type": "startEvent",
             "definitionType": "bpmn:timerEventDefinition", "properties": json.dumps(timer)},
            {"id": "end", "type": "endEvent"},
        ],
        "activities": [{"id": "check", "type": "userTask"}],
        "sequences": [
            {"id": "f1", "source": "every_night", "target": "check"},
            {"id": "f2", "source": "check", "target": "end"},
        ],
    }  # fmt: skip


async def test_timer_start_events_become_schedules_replaced_at_each_publish(api: Api) -> None:
    async with api.client() as client:

        async def publish(definition: dict[str, Any]) -> Any:
            return await client.post(
                "/v1/process-definitions", json={"id": "nightly", "definition": definition}
            )

        assert (await publish(timer_start_definition(timeCycle="0 2 * * *"))).status_code == 201
        (made,) = (await client.get("/v1/schedules")).json()["items"]
        assert made["name"] == "nightly:every_night" and made["source"] == "definition"
        assert (made["cron"], made["timezone"], made["target"]) == ("0 2 * * *", "UTC", "process")
        assert (made["proc_def_id"], made["version"], made["start_node"]) == (
            "nightly",
            1,
            "every_night",
        )
        assert made["next_run_at"].endswith(("02:00:00Z", "02:00:00+00:00"))

        assert (await publish(timer_start_definition(timeCycle="R3/PT1H"))).status_code == 201
        (cycle,) = (await client.get("/v1/schedules")).json()["items"]
        assert cycle["version"] == 2 and cycle["cron"] is None
        assert cycle["cycle"].startswith("R3/") and cycle["cycle"].endswith("/PT1H")

        plain = timer_start_definition()
        plain["events"][0] = {"id": "every_night", "type": "startEvent"}
        assert (await publish(plain)).status_code == 201
        assert (await client.get("/v1/schedules")).json()["items"] == []

        refused = await publish(timer_start_definition(timeCycle="R/PT0S"))
        assert refused.status_code == 422 and error_code(refused) == "definition_invalid"
        assert refused.json()["error"]["details"][0]["id"] == "every_night"
        detail = (await client.get("/v1/process-definitions/nightly")).json()
        assert detail["latest_version"] == 3  # nothing stored by the refused publish


async def test_a_process_schedule_starts_its_instance_through_a_worker(
    api: Api, db: Database
) -> None:
    definition = timer_start_definition()
    definition["events"][0] = {"id": "every_night", "type": "startEvent"}
    async with api.client() as client:
        published = await client.post(
            "/v1/process-definitions", json={"id": "nightly", "definition": definition}
        )
        assert published.status_code == 201, published.text
        made = await client.post(
            "/v1/schedules",
            json=body(task=None, process={"proc_def_id": "nightly", "variables": {"n": 1}}),
        )
        assert made.status_code == 201, made.text
        schedule = made.json()
        assert (schedule["target"], schedule["proc_def_id"], schedule["version"]) == (
            "process",
            "nightly",
            None,
        )
        assert schedule["variables"] == {"n": 1} and schedule["task"] is None
        await db.execute(
            "UPDATE schedules SET next_run_at = now() - interval '1 second' WHERE id = $1::uuid",
            schedule["id"],
        )
        await db.execute("SELECT pg_notify('processgpt_schedules', '')")

        async def started() -> Any:
            return await db.fetchrow(
                "SELECT proc_def_version, variables_data, idempotency_key FROM bpm_proc_inst"
            )

        row = await wait_until(started)
        assert row["proc_def_version"] == 1 and row["variables_data"] == {"n": 1}
        assert row["idempotency_key"].startswith(f"schedule:{schedule['id']}:")
