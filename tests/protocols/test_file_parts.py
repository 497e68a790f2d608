"""A stored file an agent sent: the AI SDK ``file`` part and the chat's SEND_FILE carry the
link the stream makes for it; the log keeps only the file's id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from processgpt.domain.events import Event
from processgpt.protocols.ai_sdk import UIMessageStream
from processgpt.protocols.ws_chat import MsgEventSendFile, TurnEncoder


def file_event(data: dict[str, Any]) -> Event:
    return Event(
        id=1,
        todo_id=uuid.uuid4(),
        seq=1,
        event_type="file",
        job_id="j",
        crew_type=None,
        status=None,
        data=data,
        proc_inst_id=None,
        timestamp=datetime.now(UTC),
    )


STORED = {"file_id": str(uuid.uuid4()), "name": "r.pdf", "media_type": "application/pdf"}


def link(data: dict[str, Any]) -> str:
    return f"https://api.example/v1/files/{data['file_id']}/content?expires=1&signature=s"


def test_ai_sdk_file_part_gets_the_link() -> None:
    parts = UIMessageStream("m", file_url=link).encode(file_event(STORED))
    assert parts == [{"type": "file", "url": link(STORED), "mediaType": "application/pdf"}]
    # An event with its own URL keeps it; without a way to make links, the file is data.
    own = {"url": "https://elsewhere/x.png", "media_type": "image/png"}
    assert UIMessageStream("m", file_url=link).encode(file_event(own))[0]["url"] == own["url"]
    assert UIMessageStream("m").encode(file_event(STORED)) == [
        {"type": "data-file", "data": STORED}
    ]


def test_chat_send_file_gets_the_link() -> None:
    assert TurnEncoder(file_url=link).encode(file_event(STORED)) == [
        MsgEventSendFile(path=link(STORED))
    ]
    assert TurnEncoder().encode(file_event(STORED)) == []
    assert TurnEncoder().encode(file_event({"path": "reports/a.pdf"})) == [
        MsgEventSendFile(path="reports/a.pdf")
    ]
