"""The ``llm`` agent's ``send_file`` tool, in a real worker process with file storage, the
scripted OpenAI-compatible server as the model, and a real api process to read the task's
stream, its files and documents."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from processgpt.db.database import Database
from tests.api.conftest import Api
from tests.api.test_files_tasks import stream_parts
from tests.api.test_tasks_api import wait_status
from tests.fake_llm import FakeLLM, Turn
from tests.support import StartProcess

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
async def llm_process(api: Api, fake_llm: FakeLLM, start_process: StartProcess) -> None:
    worker = start_process(
        "worker",
        "--agent",
        "llm",
        env={"PROCESSGPT_LLM_BASE_URL": fake_llm.base_url, "PROCESSGPT_LLM_API_KEY": "sk-t"},
    )
    await worker.wait_for_log("worker started")


async def _run(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    created = await client.post("/v1/tasks", json={"agent_orch": "llm", "query": query})
    assert created.status_code == 201, created.text
    return await wait_status(client, created.json()["id"], "DONE")


def _tool_messages(fake_llm: FakeLLM) -> list[str]:
    return [str(m["content"]) for m in fake_llm.requests[-1].messages if m["role"] == "tool"]


async def test_the_llm_sends_files_and_stores_a_document(
    api: Api, fake_llm: FakeLLM, llm_process: None
) -> None:
    csv = "region,total\nnorth,12\nsouth,30\n"
    fake_llm.add(
        Turn(
            tool_calls=[
                (
                    "send_file",
                    {
                        "name": "totals.csv",
                        "content_type": "text/csv",
                        "text": csv,
                        "document_title": "Totals by region",
                    },
                ),
                ("send_file", {"name": "chart.png", "base64": base64.b64encode(PNG).decode()}),
            ]
        ),
        Turn(text="Here are the totals and the chart."),
    )
    async with api.client() as client, httpx.AsyncClient() as anonymous:
        task = await _run(client, "totals please")
        assert task["output"] == "Here are the totals and the chart."
        assert "send_file" in fake_llm.requests[0].tool_names
        told = _tool_messages(fake_llm)
        assert told[0].startswith(f"Sent totals.csv (text/csv, {len(csv)} bytes) as file ")
        assert "Stored as the document 'Totals by region'" in told[0]
        assert told[1].startswith("Sent chart.png (image/png, 1032 bytes)")

        # On the task's stream exactly like an executor's send_file: file parts with links.
        stream = await client.get(f"/v1/tasks/{task['id']}/stream")
        files = [p for p in stream_parts(stream.text) if p["type"] == "file"]
        assert [f["mediaType"] for f in files] == ["text/csv", "image/png"]
        assert (await anonymous.get(str(files[0]["url"]))).text == csv
        assert (await anonymous.get(str(files[1]["url"]))).content == PNG
        events = (await client.get(f"/v1/tasks/{task['id']}/events")).json()["items"]
        sent = [e["data"] for e in events if e["event_type"] == "file"]
        assert [(s["name"], s["size"]) for s in sent] == [
            ("totals.csv", len(csv)),
            ("chart.png", 1032),
        ]
        finished = [e["data"] for e in events if e["event_type"] == "tool_usage_finished"]
        assert finished[0]["output"]["file_id"] == sent[0]["file_id"]

        # The files are the task's, made by the agent; the CSV is the step's document.
        listed = (await client.get("/v1/files", params={"task_id": task["id"]})).json()["items"]
        assert {f["created_by"] for f in listed} == {"agent:llm"} and len(listed) == 2
        [document] = (await client.get("/v1/documents", params={"task_id": task["id"]})).json()[
            "items"
        ]
        assert document["title"] == "Totals by region" and document["excerpt"] == csv
        assert document["file_id"] == sent[0]["file_id"]
        assert document["id"] == finished[0]["output"]["document_id"]


async def test_a_refused_file_is_a_tool_error_the_model_reads(
    api: Api, db: Database, fake_llm: FakeLLM, llm_process: None
) -> None:
    fake_llm.add(
        Turn(
            tool_calls=[
                ("send_file", {"name": "x.png", "content_type": "image/png", "text": "not png"}),
                ("send_file", {"name": "page.html", "text": "<html><script>x</script></html>"}),
                ("send_file", {"name": "a.bin", "base64": "@@not base64@@"}),
                ("send_file", {"name": "both.txt", "text": "a", "base64": "YQ=="}),
                ("send_file", {"text": "no name"}),
            ]
        ),
        Turn(text="Sorry, I could not make the files."),
    )
    async with api.client() as client:
        task = await _run(client, "make files")
    told = _tool_messages(fake_llm)
    assert told == [
        "Error: the file is declared image/png but its content is text/plain",
        "Error: text/html files are not accepted (allowed: " + told[1].split("(allowed: ", 1)[1],
        "Error: base64 is not valid base64",
        "Error: give the content as either text or base64",
        "Error: name must be a non-empty file name",
    ]
    assert await db.fetchval("SELECT count(*) FROM files WHERE task_id = $1", task["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM documents") == 0


async def test_the_model_sees_the_files_its_task_was_given(
    api: Api, fake_llm: FakeLLM, llm_process: None
) -> None:
    fake_llm.add(Turn(text="The notes say hello; the picture is a PNG."))
    async with api.client() as client:
        ids = []
        for name, data, kind in [
            ("notes.txt", b"hello from the notes", "text/plain"),
            ("chart.png", PNG, "image/png"),
            ("spec.pdf", b"%PDF-1.4 spec", "application/pdf"),
        ]:
            uploaded = await client.post("/v1/files", files={"file": (name, data, kind)})
            ids.append(uploaded.json()["id"])
        created = await client.post(
            "/v1/tasks",
            json={"agent_orch": "llm", "query": "what is in them?", "input": {"files": ids}},
        )
        await wait_status(client, created.json()["id"], "DONE")
    content = fake_llm.requests[0].messages[-1]["content"]
    assert isinstance(content, list)
    listing = content[0]["text"]
    assert listing.startswith("Files given with this task:\n- notes.txt (text/plain, 20 bytes")
    assert f"spec.pdf (application/pdf, 13 bytes, file id {ids[2]})" in listing
    assert content[1] == {"type": "text", "text": "--- notes.txt ---\nhello from the notes"}
    assert content[3] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    }
    assert content[-1] == {"type": "text", "text": "what is in them?"}
    assert len(content) == 5  # the PDF is listed, not inlined
