"""Publishing immutable versions in the real database: numbering under concurrency, the
identical-content rule, forms and called definitions, immutability."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import asyncpg
import pytest

from processgpt.db.database import Database
from processgpt.db.process_definitions import ProcessDefinitionRepository
from processgpt.db.tenants import TenantRepository
from processgpt.domain.errors import ProcessDefinitionInvalid, ProcessDefinitionNotFound
from processgpt.domain.process.publish import FormSpec, compile_definition


def definition(
    *, form: str | None = None, instruction: str = "", called: str | None = None
) -> dict[str, Any]:
    step: dict[str, Any] = {"id": "work", "type": "userTask", "instruction": instruction}
    if form:
        step["tool"] = f"formHandler:{form}"
    activities = [step]
    sequences = [
        {"id": "f1", "source": "start", "target": "work"},
        {"id": "f2", "source": "work", "target": "end"},
    ]
    if called:
        activities.append({"id": "call", "type": "callActivity", "calledElement": called})
        sequences[1] = {"id": "f2", "source": "work", "target": "call"}
        sequences.append({"id": "f3", "source": "call", "target": "end"})
    return {
        "processDefinitionId": "ignored",
        "processDefinitionName": "Work",
        "events": [{"id": "start", "type": "startEvent"}, {"id": "end", "type": "endEvent"}],
        "activities": activities,
        "sequences": sequences,
    }


@pytest.fixture
async def repo(db: Database) -> ProcessDefinitionRepository:
    await TenantRepository(db).ensure("acme")
    return ProcessDefinitionRepository(db)


async def test_versions_are_numbered_and_identical_content_is_not_a_new_version(
    repo: ProcessDefinitionRepository,
) -> None:
    first, created = await repo.publish("acme", compile_definition("work", definition()))
    assert (first.version, created, first.name, first.format) == (
        1,
        True,
        "Work",
        "processgpt_json",
    )
    again, created = await repo.publish("acme", compile_definition("work", definition()))
    assert (again.version, created, again.hash) == (1, False, first.hash)
    changed, created = await repo.publish(
        "acme", compile_definition("work", definition(instruction="now with care"))
    )
    assert (changed.version, created) == (2, True)
    renamed, created = await repo.publish(
        "acme", compile_definition("work", definition(instruction="now with care"), name="Other")
    )
    assert (renamed.version, created, renamed.name) == (3, True, "Other")
    assert [v.version for v in await repo.versions("acme", "work")] == [1, 2, 3]
    whole = await repo.get("acme", "work", 2)
    assert whole.graph().node("work").activity.instruction == "now with care"  # type: ignore[union-attr]
    assert (await repo.get("acme", "work")).version == 3
    assert [v.id for v in await repo.latest_versions("acme")] == ["work"]


async def test_concurrent_publishes_never_collide_or_skip(
    repo: ProcessDefinitionRepository,
) -> None:
    compiled = [
        compile_definition("busy", definition(instruction=f"variant {i}")) for i in range(16)
    ]
    results = await asyncio.gather(*(repo.publish("acme", c) for c in compiled))
    assert all(created for _, created in results)
    assert sorted(v.version for v, _ in results) == list(range(1, 17))
    stored = await repo.versions("acme", "busy")
    assert [v.version for v in stored] == list(range(1, 17))
    assert {v.hash for v in stored} == {c.content_hash for c in compiled}


async def test_concurrent_identical_publishes_make_one_version(
    repo: ProcessDefinitionRepository,
) -> None:
    compiled = compile_definition("same", definition())
    results = await asyncio.gather(*(repo.publish("acme", compiled) for _ in range(8)))
    assert {v.version for v, _ in results} == {1}
    assert sum(created for _, created in results) == 1


async def test_forms_must_exist_and_nothing_is_stored_otherwise(
    repo: ProcessDefinitionRepository, db: Database
) -> None:
    compiled = compile_definition("formed", definition(form="request_form"))
    with pytest.raises(ProcessDefinitionInvalid) as caught:
        await repo.publish("acme", compiled)
    assert [p.id for p in caught.value.problems] == ["request_form"]
    assert await db.fetchval("SELECT count(*) FROM proc_def") == 0

    forms = {"request_form": FormSpec(fields=[{"key": "amount", "type": "number"}])}
    compiled = compile_definition("formed", definition(form="request_form"), forms=forms)
    version, _ = await repo.publish("acme", compiled, forms)
    assert version.version == 1
    row = await db.fetchrow(
        "SELECT proc_def_id, fields_json FROM form_def WHERE id = 'request_form'"
    )
    assert row is not None and row["proc_def_id"] == "formed"
    assert row["fields_json"] == [{"key": "amount", "type": "number"}]
    # stored forms count for later publishes
    later = compile_definition("formed", definition(form="request_form", instruction="v2"))
    assert (await repo.publish("acme", later))[0].version == 2


async def test_a_failed_publish_stores_none_of_its_forms(
    repo: ProcessDefinitionRepository, db: Database
) -> None:
    forms = {"a_form": FormSpec()}
    compiled = compile_definition("calls", definition(form="a_form", called="missing"), forms=forms)
    with pytest.raises(ProcessDefinitionInvalid) as caught:
        await repo.publish("acme", compiled, forms)
    assert [p.id for p in caught.value.problems] == ["missing"]
    assert await db.fetchval("SELECT count(*) FROM form_def") == 0
    await repo.publish("acme", compile_definition("missing", definition()))
    assert (await repo.publish("acme", compiled, forms))[1] is True


async def test_versions_are_immutable_and_tenants_separate(
    repo: ProcessDefinitionRepository, db: Database
) -> None:
    await repo.publish("acme", compile_definition("work", definition()))
    with pytest.raises(asyncpg.exceptions.CheckViolationError, match="immutable"):
        await db.execute("UPDATE proc_def SET name = 'changed'")
    with pytest.raises(ProcessDefinitionNotFound):
        await repo.versions("globex", "work")
    with pytest.raises(ProcessDefinitionNotFound):
        await repo.get("acme", "work", 2)
    assert await repo.latest_versions("globex") == []


async def test_a_definition_inserted_before_the_repository_continues_its_numbering(
    repo: ProcessDefinitionRepository, db: Database
) -> None:
    await db.execute(
        "INSERT INTO proc_def (id, tenant_id, version, name) VALUES ('old', 'acme', 4, 'Old')"
    )
    version, _ = await repo.publish("acme", compile_definition("old", copy.deepcopy(definition())))
    assert version.version == 5
