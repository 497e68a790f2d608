"""``/v1/documents`` against real api and worker processes: documents an agent's step stores
as its result, documents people store for a human step, tenant isolation and paging."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from processgpt.db.database import Database
from tests.api.conftest import Api
from tests.api.test_process_instances_api import open_task, publish, purchase, start
from tests.api.test_tasks_api import error_code, wait_status


async def _documents(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/documents", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_an_agent_stores_its_result_as_a_document(api: Api, db: Database) -> None:
    report = "# Quarterly report\n" + "Revenue grew. " * 40
    async with api.client() as client, api.client(api.key_b) as other:
        created = await client.post(
            "/v1/tasks",
            json={
                "agent_orch": "demo",
                "query": "write the report",
                "input": {
                    "steps": 0,
                    "send_file": {
                        "name": "report.md",
                        "text": report,
                        "document_title": "Q3 report",
                    },
                },
            },
        )
        assert created.status_code == 201, created.text
        task = await wait_status(client, created.json()["id"], "DONE")
        document_id = task["output"]["document"]

        # Listed by its task, with an excerpt and its file's metadata.
        [listed] = await _documents(client, task_id=task["id"])
        assert listed["id"] == document_id and listed["title"] == "Q3 report"
        assert listed["todo_id"] == task["id"] and listed["created_by"] == "agent:demo"
        assert listed["content_chars"] == len(report) and "content" not in listed
        assert listed["excerpt"] == report[:280]
        assert listed["file"]["id"] == task["output"]["sent_file"]
        assert listed["file"]["name"] == "report.md" and "storage_key" not in listed["file"]
        assert listed["metadata"] == {"attempt": 1}

        # The whole text on its own; the file's bytes through /v1/files.
        got = (await client.get(f"/v1/documents/{document_id}")).json()
        assert got["content"] == report
        content = await client.get(f"/v1/files/{got['file_id']}/content")
        assert content.text == report

        # The task's stream shows the document as a data part.
        stream = await client.get(f"/v1/tasks/{task['id']}/stream")
        assert '"type":"data-document"' in stream.text.replace(" ", ""), stream.text
        events = (await client.get(f"/v1/tasks/{task['id']}/events")).json()["items"]
        [event] = [e for e in events if e["event_type"] == "document"]
        assert event["data"] == {
            "document_id": document_id,
            "title": "Q3 report",
            "file_id": got["file_id"],
        }

        # Another tenant sees nothing of it.
        assert await _documents(other) == []
        assert await _documents(other, task_id=task["id"]) == []
        hidden = await other.get(f"/v1/documents/{document_id}")
        assert hidden.status_code == 404 and error_code(hidden) == "document_not_found"
        refused = await other.delete(f"/v1/documents/{document_id}")
        assert refused.status_code == 404
        assert await db.fetchval("SELECT count(*) FROM documents") == 1

        # Deleting the document keeps its file.
        assert (await client.delete(f"/v1/documents/{document_id}")).status_code == 204
        gone = await client.get(f"/v1/documents/{document_id}")
        assert gone.status_code == 404 and error_code(gone) == "document_not_found"
        assert (await client.get(f"/v1/files/{got['file_id']}")).status_code == 200


async def test_people_store_documents_for_a_human_step(api: Api, db: Database) -> None:
    async with api.client() as client, api.client(api.key_b) as other:
        await publish(client, purchase())
        proc_id = (await start(client, name="pens", roles={"manager": "lee@example.com"}))["id"]
        step = await open_task(client, proc_id)
        uploaded = await client.post(
            "/v1/files", files={"file": ("quote.pdf", b"%PDF-1.4 quote", "application/pdf")}
        )
        file_id = uploaded.json()["id"]
        stored = await client.post(
            "/v1/documents",
            json={
                "task_id": step["id"],
                "title": "Supplier quote",
                "content": "3 boxes of pens, 12 EUR",
                "file_id": file_id,
                "metadata": {"supplier": "Pens & Co"},
            },
        )
        assert stored.status_code == 201, stored.text
        document = stored.json()
        # The step's instance and activity come from the task.
        assert document["proc_inst_id"] == proc_id and document["activity_id"] == "request"
        assert document["content"] == "3 boxes of pens, 12 EUR"
        assert document["file"]["content_type"] == "application/pdf"
        assert document["created_by"].startswith("key:")
        note = await client.post(
            "/v1/documents", json={"proc_inst_id": proc_id, "title": "Note", "content": "urgent"}
        )
        assert note.status_code == 201, note.text

        # The instance's documents, newest first, a page at a time.
        listed = await _documents(client, proc_inst_id=proc_id)
        assert [d["title"] for d in listed] == ["Note", "Supplier quote"]
        first = (await client.get("/v1/documents", params={"limit": 1})).json()
        assert [d["title"] for d in first["items"]] == ["Note"] and first["next_cursor"]
        second = (
            await client.get("/v1/documents", params={"limit": 1, "cursor": first["next_cursor"]})
        ).json()
        assert [d["title"] for d in second["items"]] == ["Supplier quote"]

        # References must be the tenant's, and an instance must be its task's: refused whole.
        before = await db.fetchval("SELECT count(*) FROM documents")
        theirs = (
            await other.post("/v1/files", files={"file": ("x.txt", b"globex", "text/plain")})
        ).json()["id"]
        for body, code in [
            ({"task_id": step["id"]}, "task_not_found"),
            ({"proc_inst_id": proc_id}, "process_not_found"),
            ({"file_id": file_id}, "file_not_found"),
        ]:
            answer = await other.post("/v1/documents", json={"title": "x", **body})
            assert answer.status_code == 404 and error_code(answer) == code, answer.text
        for body, code in [
            ({"file_id": theirs}, "file_not_found"),
            ({"task_id": str(uuid.uuid4())}, "task_not_found"),
            ({"task_id": step["id"], "proc_inst_id": str(uuid.uuid4())}, "process_not_found"),
        ]:
            answer = await client.post("/v1/documents", json={"title": "x", **body})
            assert answer.status_code == 404 and error_code(answer) == code, answer.text
        for bad in [{}, {"title": ""}, {"title": "x" * 501}, {"title": "x", "extra": 1}]:
            answer = await client.post("/v1/documents", json=bad)
            assert answer.status_code == 422 and error_code(answer) == "invalid_input", bad
        assert await db.fetchval("SELECT count(*) FROM documents") == before
        bad_cursor = await client.get("/v1/documents", params={"cursor": "nope"})
        assert bad_cursor.status_code == 422
