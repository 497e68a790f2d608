"""Documents (seed 001's ``documents``): what a process step stored as its result, or text kept
for the process's people and later steps. A document is metadata (a title, the task, process
instance and activity it belongs to, free-form ``metadata``), text ``content``, and optionally
a stored file (``file_id``; its bytes are read through ``/v1/files``).

Pure models and limits, no I/O (the rows are :mod:`processgpt.db.documents`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processgpt.domain.files import FileInfo

MAX_TITLE_CHARS = 500
MAX_CONTENT_CHARS = 1_000_000
"""The schema's limits (CHECK constraints on ``documents``)."""
EXCERPT_CHARS = 280
"""How much of a document's content a list shows."""


class DocumentBase(BaseModel):
    """What every view of a document shows."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    tenant_id: str
    title: str
    todo_id: uuid.UUID | None = Field(default=None, description="The task that stored it.")
    proc_inst_id: uuid.UUID | None = Field(
        default=None, description="The process instance it belongs to."
    )
    activity_id: str | None = Field(default=None, description="The step (activity) of the task.")
    content_chars: int = Field(description="Characters of text content.")
    file_id: uuid.UUID | None = Field(
        default=None, description="Its file (bytes: `GET /v1/files/{file_id}/content`)."
    )
    file: FileInfo | None = Field(
        default=None, description="The file's metadata; null without one (or once deleted)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_by: str | None = Field(
        default=None, description="`key:<prefix>`, `jwt:<sub>` or `agent:<orchestrator>`."
    )
    created_at: datetime


class Document(DocumentBase):
    """A document with its whole text content."""

    content: str


class DocumentSummary(DocumentBase):
    """A document in a list: the first characters of its content only."""

    excerpt: str = Field(description=f"The first {EXCERPT_CHARS} characters of the content.")
