"""The ``llm`` agent's ``send_file`` tool: the model makes a file (a name, a content type, and
text or base64 content) that is stored as its task's file and shown on the task's stream
exactly like an executor's ``event_queue.send_file`` (a ``file`` event; streams show a signed
download link). With ``document_title`` the file is also stored as a document of the step
(``/v1/documents``), its text as the document's content.

A refused file (a type not accepted, bytes that contradict the declared type, over the size
limit, bad base64) is a tool error the model can read and correct; nothing is stored then.
Storage and lease failures are not the model's to fix: they end the run like any other."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from processgpt.domain.documents import MAX_CONTENT_CHARS, MAX_TITLE_CHARS, Document
from processgpt.domain.errors import InvalidInput
from processgpt.domain.files import FileInfo
from processgpt.tools.mcp_tools import ToolOutcome

SEND_FILE = "send_file"

SEND_FILE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": SEND_FILE,
        "description": "Send the user a file you made (a report, a CSV, a JSON export, an "
        "image). Give its content as `text` (for text files) or as `base64` (for binary "
        "files), not both. Set `document_title` when the file is this step's result document.",
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "File name, e.g. report.md."},
                "content_type": {
                    "type": "string",
                    "description": "MIME type, e.g. text/markdown (default: from the name).",
                },
                "text": {"type": "string", "description": "The content, as text."},
                "base64": {"type": "string", "description": "The content, base64-encoded."},
                "document_title": {
                    "type": "string",
                    "description": "Also keep the file as a document of this step, titled so.",
                },
            },
            "required": ["name"],
        },
    },
}


class FileSender(Protocol):
    """What the tool needs of the task's event queue (``ProcessGPTEventQueue``)."""

    async def send_file(
        self, name: str, data: bytes, media_type: str | None = None
    ) -> FileInfo: ...

    async def save_document(
        self,
        title: str,
        content: str = "",
        *,
        file_id: uuid.UUID | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Document: ...


def _content(arguments: Mapping[str, Any]) -> tuple[bytes, str | None]:
    """The file's bytes, and its text when given as text."""
    text, encoded = arguments.get("text"), arguments.get("base64")
    if (text is None) == (encoded is None):
        raise InvalidInput("give the content as either text or base64")
    if text is not None:
        if not isinstance(text, str):
            raise InvalidInput("text must be a string")
        return text.encode(), text
    if not isinstance(encoded, str):
        raise InvalidInput("base64 must be a string")
    try:
        return base64.b64decode("".join(encoded.split()), validate=True), None
    except (binascii.Error, ValueError):
        raise InvalidInput("base64 is not valid base64") from None


def _title(arguments: Mapping[str, Any]) -> str | None:
    title = arguments.get("document_title")
    if title is None:
        return None
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("document_title must be a non-empty string")
    return title.strip()[:MAX_TITLE_CHARS]


async def call_send_file(sender: FileSender, arguments: Mapping[str, Any]) -> ToolOutcome:
    """Run ``send_file``: store the file (and the document), or say why not."""
    try:
        name = arguments.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name must be a non-empty file name")
        media_type = arguments.get("content_type")
        if media_type is not None and not isinstance(media_type, str):
            raise InvalidInput("content_type must be a string")
        data, text = _content(arguments)
        title = _title(arguments)
        info = await sender.send_file(name.strip(), data, media_type)
    except InvalidInput as exc:
        return ToolOutcome(text=f"Error: {exc.message}", error=exc.message)
    output: dict[str, Any] = {
        "file_id": str(info.id),
        "name": info.name,
        "media_type": info.content_type,
        "size": info.size,
    }
    said = f"Sent {info.name} ({info.content_type}, {info.size} bytes) as file {info.id}."
    if title is not None:
        document = await sender.save_document(
            title, (text or "")[:MAX_CONTENT_CHARS], file_id=info.id
        )
        output["document_id"] = str(document.id)
        said += f" Stored as the document {document.title!r} ({document.id})."
    return ToolOutcome(text=said, output=output)
