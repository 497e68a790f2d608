"""Files in AI SDK ``useChat`` messages (``file`` parts): stored as the chat's files and handed
to the agent, through real api and worker processes; what is refused stores nothing."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from processgpt.api.chat_files import decode_data_url, own_file_id
from processgpt.db.database import Database
from processgpt.domain.errors import FileTooLarge, InvalidInput
from tests.api.conftest import Api
from tests.api.test_chat_sse import post_chat
from tests.api.test_tasks_api import error_code
from tests.protocols.ui_stream import validate


def message(chat_id: str, text: str, *files: dict[str, Any]) -> dict[str, Any]:
    """A request as DefaultChatTransport sends it, the files as `file` parts (what
    `convertFileListToFileUIParts` makes of picked files: data: URLs)."""
    parts = [*({"type": "file", **f} for f in files), {"type": "text", "text": text}]
    return {
        "id": chat_id,
        "trigger": "submit-message",
        "messages": [{"id": "m1", "role": "user", "parts": parts}],
    }


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


async def test_file_parts_become_the_chats_files_and_reach_the_agent(
    api: Api, db: Database
) -> None:
    notes = "Meeting notes ✓\n".encode()
    big = b"0123456789abcdef\n" * 150_000  # 2.5 MB: over the limit of other bodies
    async with api.client() as client:
        uploaded = await client.post(
            "/v1/files", files={"file": ("plan.md", b"# Plan\n", "text/markdown")}
        )
        plan = uploaded.json()
        link = (await client.post(f"/v1/files/{plan['id']}/link")).json()["url"]
        body = message(
            "files-1",
            "summarise these",
            {"mediaType": "text/plain", "url": data_url(notes, "text/plain"), "filename": "n.txt"},
            {"mediaType": "text/markdown", "url": link, "filename": "plan.md"},
            {"mediaType": "text/csv", "url": data_url(big, "text/csv"), "filename": "big.csv"},
        )
        stream = validate(await post_chat(client, body, agent="demo"))
        assert stream.done

        task = await db.fetchrow("SELECT id, input FROM todolist")
        assert task is not None
        attachments = task["input"]["attachments"]
        assert len(attachments) == 3 and attachments[1] == plan["id"]
        # The agent read all three from storage, in the message's order.
        result = stream.of_type("data-result")[0]["data"]
        assert result["files"] == [
            {"name": "n.txt", "size": len(notes), "sha256": hashlib.sha256(notes).hexdigest()},
            {"name": "plan.md", "size": 7, "sha256": plan["sha256"]},
            {"name": "big.csv", "size": len(big), "sha256": hashlib.sha256(big).hexdigest()},
        ]
        # The inline ones are the chat's files now, uploaded by the caller's key.
        listed = (await client.get("/v1/files", params={"chat_id": "files-1"})).json()["items"]
        assert {f["id"] for f in listed} == {attachments[0], attachments[2]}
        assert {f["content_type"] for f in listed} == {"text/plain", "text/csv"}
        assert all(f["created_by"].startswith("key:") for f in listed)


async def test_refused_file_parts_store_nothing(api: Api, db: Database) -> None:
    async with api.client() as client, api.client(api.key_b) as other:
        theirs = (
            await other.post("/v1/files", files={"file": ("x.txt", b"globex", "text/plain")})
        ).json()["id"]
        good = {"mediaType": "text/plain", "url": data_url(b"fine", "text/plain")}
        cases = [
            (
                {"mediaType": "image/png", "url": "https://example.com/cat.png"},
                422,
                "url_not_allowed",
            ),
            ({"mediaType": "text/plain", "url": "file:///etc/passwd"}, 422, "url_not_allowed"),
            (
                {
                    "mediaType": "text/plain",
                    "url": f"https://example.com/v1/files/{theirs}/content",
                },
                422,
                "url_not_allowed",
            ),
            (
                {"mediaType": "text/plain", "url": f"/v1/files/{theirs}/content"},
                404,
                "file_not_found",
            ),
            (
                {"mediaType": "image/png", "url": data_url(b"not a png", "image/png")},
                415,
                "unsupported_media_type",
            ),
            (
                {"mediaType": "text/html", "url": data_url(b"<html></html>", "text/html")},
                415,
                "unsupported_media_type",
            ),
            (
                {"mediaType": "text/plain", "url": "data:text/plain;base64,@@@"},
                422,
                "invalid_input",
            ),
            ({"mediaType": "text/plain", "url": "data:text/plain;base64"}, 422, "invalid_input"),
            ({"mediaType": "text/plain"}, 422, "invalid_input"),
        ]
        for part, status, code in cases:
            # A good file beside the refused one is not kept either.
            body = message("refused", "hi", good, part)
            response = await client.post("/v1/chat", json=body)
            assert response.status_code == status and error_code(response) == code, (
                part,
                response.text,
            )
        too_many = message("refused", "hi", *[good] * 21)
        response = await client.post("/v1/chat", json=too_many)
        assert response.status_code == 422 and error_code(response) == "invalid_input"
        assert await db.fetchval("SELECT count(*) FROM todolist") == 0
        assert await db.fetchval("SELECT count(*) FROM files WHERE tenant_id = 'acme'") == 0


def test_data_urls_are_decoded_within_the_limit() -> None:
    assert decode_data_url("data:text/plain;charset=utf-8;base64,aGk=", 10) == (b"hi", "text/plain")
    assert decode_data_url("data:," + quote("a b,c"), 10) == (b"a b,c", None)
    assert decode_data_url("data:text/csv,a%2Cb", 10) == (b"a,b", "text/csv")
    with pytest.raises(FileTooLarge):  # judged before decoding
        decode_data_url("data:;base64," + "A" * 400, 100)
    with pytest.raises(FileTooLarge):
        decode_data_url("data:;base64," + base64.b64encode(b"x" * 101).decode(), 100)
    with pytest.raises(FileTooLarge):
        decode_data_url("data:," + "x" * 101, 100)
    with pytest.raises(InvalidInput):
        decode_data_url("data:text/plain;base64,a", 100)


def test_links_to_this_servers_files_are_recognised_by_origin() -> None:
    file_id = uuid.uuid4()
    origins = {"http://127.0.0.1:8080", "https://files.example.com"}
    path = f"/v1/files/{file_id}/content"
    assert own_file_id(f"http://127.0.0.1:8080{path}?expires=1&signature=x", origins) == file_id
    assert own_file_id(f"https://files.example.com{path}", origins) == file_id
    assert own_file_id(path, origins) == file_id
    assert own_file_id(f"https://evil.example.com{path}", origins) is None
    assert own_file_id(f"http://127.0.0.1:8080/v1/files/{file_id}", origins) is None
    assert (
        own_file_id(
            "http://127.0.0.1:8080/v1/files/not-an-id-not-an-id-not-an-id-123456/content", origins
        )
        is None
    )
