"""Bodies and pages of ``/v1/files``, shared by the server and the client."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from processgpt.domain.files import FileInfo


class FilePage(BaseModel):
    items: list[FileInfo]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 86400,
        description="How long the link works (default: the server's setting, 15 min).",
    )


class FileLink(BaseModel):
    """A signed link: downloads the file without an API key until ``expires_at``."""

    url: str
    expires_at: int = Field(description="Unix seconds.")
