"""Files given to tasks and sent by agents, through real api and worker processes."""

from __future__ import annotations

import hashlib
import json

import httpx

from processgpt.db.database import Database
from tests.api.conftest import Api
from tests.api.test_tasks_api import error_code, wait_status


def stream_parts(text: str) -> list[dict[str, object]]:
    return [
        json.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: {")
    ]


async def test_an_agent_reads_attached_files_and_sends_one(api: Api, db: Database) -> None:
    attached = "line one\nline two ✓\n".encode()
    async with api.client() as client, httpx.AsyncClient() as anonymous:
        uploaded = await client.post(
            "/v1/files", files={"file": ("notes.txt", attached, "text/plain")}
        )
        assert uploaded.status_code == 201, uploaded.text
        file_id = uploaded.json()["id"]
        created = await client.post(
            "/v1/tasks",
            json={
                "agent_orch": "demo",
                "query": "summarise",
                "input": {
                    "steps": 1,
                    "files": [file_id],
                    "send_file": {"name": "summary.md", "text": "# Summary\n2 lines"},
                },
            },
        )
        assert created.status_code == 201, created.text
        task = await wait_status(client, created.json()["id"], "DONE")
        output = task["output"]
        # The agent read the attached file's bytes from storage.
        assert output["files"] == [
            {
                "name": "notes.txt",
                "size": len(attached),
                "sha256": hashlib.sha256(attached).hexdigest(),
            }
        ]

        # The sent file is on the task's stream as an AI SDK file part with a signed link.
        stream = await client.get(f"/v1/tasks/{task['id']}/stream")
        parts = [p for p in stream_parts(stream.text) if p["type"] == "file"]
        assert len(parts) == 1, stream.text
        assert parts[0]["mediaType"] == "text/markdown"
        url = str(parts[0]["url"])
        assert f"/v1/files/{output['sent_file']}/content?" in url and "signature=" in url
        got = await anonymous.get(url)  # no API key
        assert got.status_code == 200 and got.content == b"# Summary\n2 lines"
        assert got.headers["content-disposition"].startswith('attachment; filename="summary.md"')

        # The log keeps the file's id, never a link that expires.
        events = (await client.get(f"/v1/tasks/{task['id']}/events")).json()["items"]
        [event] = [e for e in events if e["event_type"] == "file"]
        assert event["data"] == {
            "file_id": output["sent_file"],
            "name": "summary.md",
            "media_type": "text/markdown",
            "size": 17,
        }

        # Both files are the task's now: the one it was given and the one it made.
        listed = (await client.get("/v1/files", params={"task_id": task["id"]})).json()
        by_id = {f["id"]: f for f in listed["items"]}
        assert set(by_id) == {file_id, output["sent_file"]}
        assert by_id[output["sent_file"]]["created_by"] == "agent:demo"


async def test_tasks_may_name_only_their_tenants_files(api: Api, db: Database) -> None:
    async with api.client() as a, api.client(api.key_b) as b:
        theirs = (
            await b.post("/v1/files", files={"file": ("x.txt", b"globex only", "text/plain")})
        ).json()["id"]
        before = await db.fetchval("SELECT count(*) FROM todolist")
        refused = await a.post(
            "/v1/tasks", json={"agent_orch": "demo", "input": {"files": [theirs]}}
        )
        assert refused.status_code == 404 and error_code(refused) == "file_not_found"
        for bad in ["nope", ["nope"], [1], [theirs] * 0 + ["0" * 36]]:
            answer = await a.post("/v1/tasks", json={"agent_orch": "demo", "input": {"files": bad}})
            assert answer.status_code == 422 and error_code(answer) == "invalid_input", bad
        assert await db.fetchval("SELECT count(*) FROM todolist") == before
        # The other tenant's file stays theirs.
        row = await db.fetchrow("SELECT tenant_id, task_id FROM files WHERE id = $1", theirs)
        assert row is not None and row["tenant_id"] == "globex" and row["task_id"] is None
