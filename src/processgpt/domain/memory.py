"""Long-term memory items: what an agent was taught (by the Agent Boss) or learned (from
feedback), their scope, and the rules that do not need a database.

A scope column left empty (None) means "any": an item with ``agent=None`` is seen by every
agent of its tenant. A task sees an item only when each of the item's scope columns is None
or equal to the task's own (:meth:`MemoryScope.covers`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_CONTENT = 10_000
SCOPE_FIELDS = ("agent", "proc_def_id", "activity_id", "user_id")


class MemoryKind(StrEnum):
    FACT = "fact"
    GUIDELINE = "guideline"
    PREFERENCE = "preference"
    CORRECTION = "correction"


class MemoryStatus(StrEnum):
    PROPOSED = "proposed"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    DELETED = "deleted"


class MemorySource(StrEnum):
    FEEDBACK = "feedback"
    BOSS = "boss"
    AGENT = "agent"


def _scope_value(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > 200 or "\x00" in value:
        raise ValueError("a scope value is at most 200 characters, without NUL")
    return value


class MemoryScope(BaseModel):
    """Where an item applies (None: any). Also the scope a task searches in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str | None = Field(default=None, examples=["support-bot"])
    proc_def_id: str | None = None
    activity_id: str | None = None
    user_id: str | None = None

    @field_validator(*SCOPE_FIELDS)
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _scope_value(value)

    def covers(self, item: MemoryScope) -> bool:
        """Whether a task in this scope may see ``item`` (each of its columns None or ours)."""
        return all(
            getattr(item, name) is None or getattr(item, name) == getattr(self, name)
            for name in SCOPE_FIELDS
        )

    def args(self) -> tuple[str | None, str | None, str | None, str | None]:
        return (self.agent, self.proc_def_id, self.activity_id, self.user_id)


def _clean_text(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    return value


class MemoryFields(BaseModel):
    """What a person may set on an item (the Agent Boss API)."""

    model_config = ConfigDict(extra="forbid")

    kind: MemoryKind = MemoryKind.GUIDELINE
    content: str = Field(
        min_length=1, max_length=MAX_CONTENT, examples=["보고서는 항상 표 형식으로"]
    )
    original: str | None = Field(
        default=None,
        max_length=20_000,
        description="For a correction: the answer it corrects (required for kind correction).",
    )
    pinned: bool = False
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    expires_at: datetime | None = None

    _text = field_validator("content", "original")(_clean_text)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content may not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> MemoryFields:
        if self.kind is MemoryKind.CORRECTION and not self.original:
            raise ValueError("a correction needs the original answer it corrects (original)")
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        return self


class MemoryCreate(MemoryFields):
    """A new item taught by a person (``source`` boss), active unless ``proposed``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "content": "보고서는 항상 표 형식으로 작성한다.",
                    "kind": "guideline",
                    "scope": {"agent": "report-writer"},
                    "pinned": True,
                }
            ]
        },
    )

    scope: MemoryScope = Field(default_factory=MemoryScope)
    proposed: bool = False
    reason: str | None = Field(default=None, max_length=2000)


class MemoryPatch(BaseModel):
    """Fields of an item to change; absent fields are kept. Changing ``content`` re-embeds."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"pinned": True, "reason": "always needed"}]},
    )

    kind: MemoryKind | None = None
    content: str | None = Field(default=None, min_length=1, max_length=MAX_CONTENT)
    original: str | None = Field(default=None, max_length=20_000)
    pinned: bool | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    expires_at: datetime | None = None
    reason: str | None = Field(default=None, max_length=2000)

    _text = field_validator("content", "original")(_clean_text)


class MemoryItem(BaseModel):
    """An item as stored (without its embedding)."""

    id: uuid.UUID
    scope: MemoryScope
    kind: MemoryKind
    content: str
    original: str | None
    status: MemoryStatus
    pinned: bool
    source: MemorySource
    source_task_id: uuid.UUID | None
    source_feedback_id: uuid.UUID | None
    superseded_by: uuid.UUID | None
    embedding_model: str | None
    valid_from: datetime
    valid_to: datetime | None
    expires_at: datetime | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> MemoryItem:
        values = dict(row)
        values["scope"] = MemoryScope(**{k: values.pop(k, None) for k in SCOPE_FIELDS})
        return cls.model_validate({k: v for k, v in values.items() if k in cls.model_fields})


class MemoryHit(BaseModel):
    """A retrieved item with how it ranked."""

    item: MemoryItem
    score: float = Field(description="Reciprocal-rank-fusion score (higher is better).")
    similarity: float | None = Field(description="Cosine similarity, when found by vector.")


class MemoryChange(BaseModel):
    """One row of an item's history."""

    id: int
    memory_id: uuid.UUID
    at: datetime
    actor: str
    action: str
    reason: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def normalise(text: str) -> str:
    """The form of a content compared for exact dedup: NFKC, case-folded, spaces collapsed,
    trailing punctuation dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" .。!?！？")


def content_hash(text: str) -> bytes:
    return hashlib.sha256(normalise(text).encode("utf-8")).digest()


_HANGUL = re.compile(r"[\uac00-\ud7a3]+")
_WORD = re.compile(r"\w+", re.UNICODE)


def search_terms(text: str) -> str:
    """The words indexed (and searched) for ``text``: NFKC, case-folded word characters only
    (safe for ``to_tsvector`` / ``plainto_tsquery``). The database reads them with the
    'english' configuration (stems, drops stop words; Hangul words pass unchanged)."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def hangul_bigrams(text: str) -> str:
    """Each Hangul run's character bigrams, indexed with the 'simple' configuration, so that
    Korean words with different particles or endings (보고서는 / 보고서를) share terms."""
    text = unicodedata.normalize("NFKC", text)
    grams = [run[i : i + 2] for run in _HANGUL.findall(text) for i in range(len(run) - 1)]
    return " ".join(grams)
