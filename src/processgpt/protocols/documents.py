"""Bodies and pages of ``/v1/documents``, shared by the server and the client."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processgpt.domain.documents import MAX_CONTENT_CHARS, MAX_TITLE_CHARS, DocumentSummary


class DocumentPage(BaseModel):
    items: list[DocumentSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class DocumentCreate(BaseModel):
    """A document to store: text, a file already uploaded (`POST /v1/files`), or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "task_id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                    "title": "Signed contract",
                    "content": "Contract between ACME and Globex, signed on 2026-12-01.",
                    "file_id": "0192f3a4-5b6c-7d8e-9f00-aabbccddeeff",
                }
            ]
        },
    )

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    content: str = Field(default="", max_length=MAX_CONTENT_CHARS)
    task_id: uuid.UUID | None = Field(
        default=None,
        description="The step (task) whose result it is; its process instance and activity "
        "are the task's.",
    )
    proc_inst_id: uuid.UUID | None = Field(
        default=None, description="The process instance it belongs to (without a task)."
    )
    file_id: uuid.UUID | None = Field(default=None, description="One of the tenant's files.")
    metadata: dict[str, Any] = Field(default_factory=dict)
