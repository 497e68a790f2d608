"""Events: the durable, ordered log of what happened in a task.

An :class:`EventRecord` is what an executor's event becomes before it is written; the log
assigns it a per-task sequence number (``seq``, gap-free from 1) when it is accepted.
"""

from __future__ import annotations

import enum
import json
import json.scanner
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from processgpt.domain.errors import InvalidInput, PayloadTooLarge

MAX_EVENT_DATA_BYTES = 1_000_000
"""Largest accepted event payload once encoded as JSON."""
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_JOB_ID_MAX = 200


class EventType(enum.StrEnum):
    """Event types the runtime writes itself or maps A2A states to. The ProcessGPT contract's
    values come first; executors may also name their own (``^[a-z][a-z0-9_]{0,63}$``)."""

    TASK_STARTED = "task_started"
    TASK_WORKING = "task_working"
    TASK_COMPLETED = "task_completed"
    TOOL_USAGE_STARTED = "tool_usage_started"
    TOOL_USAGE_FINISHED = "tool_usage_finished"
    CREW_COMPLETED = "crew_completed"
    HUMAN_ASKED = "human_asked"
    HUMAN_RESPONSE = "human_response"
    HUMAN_CHECKED = "human_checked"
    ERROR = "error"
    # Added by this runtime:
    TASK_REQUEUED = "task_requeued"
    TASK_CANCELLED = "task_cancelled"


_KNOWN_TYPES = frozenset(EventType)


class EventStatus(enum.StrEnum):
    """The ``status`` column of an event (ProcessGPT contract)."""

    ASKED = "ASKED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


_NUL_ESCAPE = re.compile(r"(\\+)u0000")


def _replace_nul(match: re.Match[str]) -> str:
    slashes = match.group(1)
    # An odd run of backslashes ends in the escape of a real NUL; an even run is literal text.
    return slashes[:-1] + "\\ufffd" if len(slashes) % 2 else match.group(0)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
"""One encoder for every call (``json.dumps`` with options builds a new one each time)."""


def encode_json(value: Any) -> str:
    """JSON text safe for a ``jsonb`` column. Postgres refuses the NUL code point, so a NUL is
    replaced by U+FFFD rather than failing a whole batch later; NaN and infinities are not
    JSON and are refused with :class:`InvalidInput`."""
    try:
        text = _ENCODER.encode(value)
    except ValueError as exc:
        raise InvalidInput(f"value is not valid JSON: {exc}") from None
    if "u0000" in text:
        text = _NUL_ESCAPE.sub(_replace_nul, text)
    return text


_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def decode_json(text: str) -> Any:
    """``json.loads`` for JSON text: one call into the C scanner instead of three Python frames
    and two regex matches (~0.3 µs instead of ~1.6 µs for a small object). Text with
    whitespace around the value goes through ``json.loads``."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def encode_event_data(data: Any) -> str:
    """An event's ``data`` as JSON text; :class:`PayloadTooLarge` over
    :data:`MAX_EVENT_DATA_BYTES`."""
    encoded = encode_json(data)
    # Characters are at most 4 bytes: only long texts need the exact byte count.
    if len(encoded) * 4 > MAX_EVENT_DATA_BYTES and len(encoded.encode()) > MAX_EVENT_DATA_BYTES:
        raise PayloadTooLarge(f"event data is over {MAX_EVENT_DATA_BYTES} bytes")
    return encoded


def parse_text(text: str) -> Any:
    """The ProcessGPT rule: a message text that is JSON is stored as that JSON, else as text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return decode_json(stripped)
        except ValueError:
            return text
    return text


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event, validated, before it has a sequence number. Build with :meth:`build`."""

    event_type: str
    job_id: str
    data: Any
    crew_type: str | None = None
    status: EventStatus | None = None

    @classmethod
    def build(
        cls,
        event_type: str,
        data: Any,
        *,
        job_id: str,
        crew_type: str | None = None,
        status: str | None = None,
    ) -> tuple[EventRecord, str]:
        """Validate an event and return it with its JSON-encoded ``data``.

        Raises :class:`InvalidInput` for a malformed type, job id or status and
        :class:`PayloadTooLarge` when ``data`` is over :data:`MAX_EVENT_DATA_BYTES`.
        """
        if event_type not in _KNOWN_TYPES and not _NAME.match(event_type):
            raise InvalidInput(f"event_type {event_type!r} is not a valid name", field="event_type")
        if not job_id or len(job_id) > _JOB_ID_MAX:
            raise InvalidInput("job_id must be 1-200 characters", field="job_id")
        if crew_type is not None and len(crew_type) > 100:
            raise InvalidInput("crew_type must be at most 100 characters", field="crew_type")
        try:
            parsed_status = EventStatus(status) if status else None
        except ValueError:
            raise InvalidInput(
                f"event status {status!r} is not one of ASKED, APPROVED, REJECTED", field="status"
            ) from None
        encoded = encode_event_data(data)
        return cls(str(event_type), job_id, data, crew_type, parsed_status), encoded


class Event(BaseModel):
    """An event as stored in the log."""

    model_config = ConfigDict(frozen=True)

    id: int
    todo_id: uuid.UUID
    seq: int
    event_type: str
    job_id: str
    crew_type: str | None
    status: str | None
    data: Any
    proc_inst_id: uuid.UUID | None
    timestamp: datetime
