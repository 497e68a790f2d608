"""Reading Server-Sent Events: text → frames → typed UI message stream parts. No I/O.

:class:`SSEDecoder` is incremental (feed it chunks as they arrive, split anywhere, even inside
a UTF-8 sequence or a ``\\r\\n``) and follows the WHATWG rules this API relies on: ``data:``
lines joined by newlines, ``id:``, ``event:`` and ``retry:`` fields, ``:`` comments, a blank
line ends a frame. Unlike a browser it also returns frames that carry only an ``id`` (servers
before this one sent ``id: <seq>`` alone for an event that had no parts; a client ignores
them but moves its cursor).

:func:`parse_part` turns a frame's JSON into one of the part models below (the Vercel AI SDK
UI message stream v1 part types, see ``processgpt.protocols.ai_sdk``), with the frame's SSE
id attached as ``event_id`` (and as ``seq`` when it is a number).

:class:`ResumeCursor` is the bookkeeping that makes a task stream resumable without loss or
repeats across dropped connections.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DONE_DATA = "[DONE]"


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEFrame:
    """One dispatched SSE frame. ``data`` is ``None`` when the frame had no ``data:`` line."""

    data: str | None = None
    id: str | None = None
    event: str | None = None
    retry: int | None = None

    @property
    def done(self) -> bool:
        return self.data == DONE_DATA


@dataclass
class SSEDecoder:
    """Incremental SSE parser: ``feed(chunk)`` returns the frames completed by that chunk."""

    comments: int = 0
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    _buffer: str = ""
    _data: list[str] = field(default_factory=list)
    _has_data: bool = False
    _id: str | None = None
    _event: str | None = None
    _retry: int | None = None
    _first: bool = True

    def feed(self, chunk: bytes | str) -> list[SSEFrame]:
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if self._first and text:
            text = text.removeprefix("\ufeff")
            self._first = False
        self._buffer += text
        frames: list[SSEFrame] = []
        while True:
            match = _LINE_END.search(self._buffer)
            # A lone "\r" at the very end may be the first half of "\r\n": wait for more.
            if match is None or (match.group() == "\r" and match.end() == len(self._buffer)):
                break
            line = self._buffer[: match.start()]
            self._buffer = self._buffer[match.end() :]
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)
        return frames

    def _line(self, line: str) -> SSEFrame | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id":
            if "\x00" not in value:
                self._id = value
        elif name == "event":
            self._event = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEFrame | None:
        if not self._has_data and self._id is None and self._event is None and self._retry is None:
            return None
        frame = SSEFrame(
            data="\n".join(self._data) if self._has_data else None,
            id=self._id,
            event=self._event,
            retry=self._retry,
        )
        self._data, self._has_data = [], False
        self._id = self._event = None
        self._retry = None
        return frame


def parse_frames(text: str) -> list[SSEFrame]:
    """Every complete frame of a whole stream's text."""
    return SSEDecoder().feed(text)


# -- parts ------------------------------------------------------------------------------------


class StreamPart(BaseModel):
    """A UI message stream part. Unknown fields are kept (``model_extra``), so a newer server
    never breaks an older client; ``event_id`` is the SSE id of the frame that carried it
    (``seq`` when that id is a task event sequence number)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    type: str
    event_id: str | None = Field(default=None, exclude=True)

    @property
    def seq(self) -> int | None:
        return (
            int(self.event_id) if self.event_id is not None and _is_number(self.event_id) else None
        )


class StartPart(StreamPart):
    type: Literal["start"] = "start"
    message_id: str | None = Field(default=None, alias="messageId")
    message_metadata: Any = Field(default=None, alias="messageMetadata")


class FinishPart(StreamPart):
    type: Literal["finish"] = "finish"
    finish_reason: str | None = Field(default=None, alias="finishReason")
    message_metadata: Any = Field(default=None, alias="messageMetadata")


class AbortPart(StreamPart):
    type: Literal["abort"] = "abort"
    reason: str | None = None


class StartStepPart(StreamPart):
    type: Literal["start-step"] = "start-step"


class FinishStepPart(StreamPart):
    type: Literal["finish-step"] = "finish-step"


class TextStartPart(StreamPart):
    type: Literal["text-start"] = "text-start"
    id: str


class TextDeltaPart(StreamPart):
    type: Literal["text-delta"] = "text-delta"
    id: str
    delta: str


class TextEndPart(StreamPart):
    type: Literal["text-end"] = "text-end"
    id: str


class ReasoningStartPart(StreamPart):
    type: Literal["reasoning-start"] = "reasoning-start"
    id: str


class ReasoningDeltaPart(StreamPart):
    type: Literal["reasoning-delta"] = "reasoning-delta"
    id: str
    delta: str


class ReasoningEndPart(StreamPart):
    type: Literal["reasoning-end"] = "reasoning-end"
    id: str


class ToolInputStartPart(StreamPart):
    type: Literal["tool-input-start"] = "tool-input-start"
    tool_call_id: str = Field(alias="toolCallId")
    tool_name: str = Field(alias="toolName")


class ToolInputDeltaPart(StreamPart):
    type: Literal["tool-input-delta"] = "tool-input-delta"
    tool_call_id: str = Field(alias="toolCallId")
    input_text_delta: str = Field(alias="inputTextDelta")


class ToolInputAvailablePart(StreamPart):
    type: Literal["tool-input-available"] = "tool-input-available"
    tool_call_id: str = Field(alias="toolCallId")
    tool_name: str = Field(alias="toolName")
    input: Any = None


class ToolInputErrorPart(StreamPart):
    type: Literal["tool-input-error"] = "tool-input-error"
    tool_call_id: str = Field(alias="toolCallId")
    tool_name: str | None = Field(default=None, alias="toolName")
    input: Any = None
    error_text: str = Field(default="", alias="errorText")


class ToolOutputAvailablePart(StreamPart):
    type: Literal["tool-output-available"] = "tool-output-available"
    tool_call_id: str = Field(alias="toolCallId")
    output: Any = None


class ToolOutputErrorPart(StreamPart):
    type: Literal["tool-output-error"] = "tool-output-error"
    tool_call_id: str = Field(alias="toolCallId")
    error_text: str = Field(alias="errorText")


class ErrorPart(StreamPart):
    type: Literal["error"] = "error"
    error_text: str = Field(alias="errorText")


class FilePart(StreamPart):
    type: Literal["file"] = "file"
    url: str
    media_type: str = Field(alias="mediaType")


class SourceUrlPart(StreamPart):
    type: Literal["source-url"] = "source-url"
    source_id: str | None = Field(default=None, alias="sourceId")
    url: str
    title: str | None = None


class MessageMetadataPart(StreamPart):
    type: Literal["message-metadata"] = "message-metadata"
    message_metadata: Any = Field(default=None, alias="messageMetadata")


class DataPart(StreamPart):
    """A ``data-<name>`` part: the runtime's own events (``data-task_working``,
    ``data-result``, ``data-task_event`` on process streams, …)."""

    id: str | None = None
    data: Any = None
    transient: bool | None = None

    @property
    def name(self) -> str:
        return self.type.removeprefix("data-")


_PART_TYPES: dict[str, type[StreamPart]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        StartPart,
        FinishPart,
        AbortPart,
        StartStepPart,
        FinishStepPart,
        TextStartPart,
        TextDeltaPart,
        TextEndPart,
        ReasoningStartPart,
        ReasoningDeltaPart,
        ReasoningEndPart,
        ToolInputStartPart,
        ToolInputDeltaPart,
        ToolInputAvailablePart,
        ToolInputErrorPart,
        ToolOutputAvailablePart,
        ToolOutputErrorPart,
        ErrorPart,
        FilePart,
        SourceUrlPart,
        MessageMetadataPart,
    )
}


STATUS_PART = "data-task_status"
"""The type of a task's status snapshot (``processgpt.protocols.ai_sdk.task_status_part``)."""


class StreamProtocolError(ValueError):
    """A frame's data is not a UI message stream part."""


def parse_part(data: str, event_id: str | None = None) -> StreamPart:
    """The typed part for one frame's ``data`` (JSON). Unknown types become a plain
    :class:`StreamPart` with their fields kept; malformed JSON raises
    :class:`StreamProtocolError`."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise StreamProtocolError(f"frame data is not JSON: {data[:80]!r}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise StreamProtocolError(f"frame data is not a part: {data[:80]!r}")
    kind: str = raw["type"]
    raw.pop("event_id", None)
    cls = DataPart if kind.startswith("data-") else _PART_TYPES.get(kind, StreamPart)
    try:
        part = cls.model_validate(raw)
    except ValueError as exc:
        raise StreamProtocolError(f"malformed {kind!r} part: {exc}") from exc
    return part.model_copy(update={"event_id": event_id}) if event_id is not None else part


# -- resuming a task stream -------------------------------------------------------------------


@dataclass
class ResumeCursor:
    """Where a reader of a task stream is, so that a new connection continues exactly there.

    The server's contract (``processgpt.api.streams``): each event's last frame carries
    ``id: <seq>``; a request with ``Last-Event-ID: L`` gets first the parts that re-open what
    was open at L (``start``, then ``start-step``, ``tool-input-start`` and
    ``tool-input-available`` per open call,
    ``reasoning-start``, ``text-start``), then every frame after L, identical to the first
    time. The cursor mirrors the open state from the parts it delivered, so on a new
    connection it knows how many leading frames the reader already has: the re-opening prefix
    of L plus the id-less frames delivered after L (the start of an event cut off mid-way, or
    the closing parts after the last event). ``data-task_status`` snapshots are not counted:
    the server sends the current one again on a new connection when it still applies (the
    task still waits), so a reader may get the same snapshot twice, never a stale one after
    a newer. Use :meth:`connect` before each request and :meth:`accept` for every data frame.
    """

    last_id: int = 0
    _position: int = 0  # frames after last_id the reader already has, counted as the server sends
    _skip: int = 0
    _step_open: bool = False
    _tools: set[str] = field(default_factory=set)
    _text_open: bool = False
    _reasoning_open: bool = False
    _connected_once: bool = False

    def connect(self) -> str | None:
        """Call before each (re)connection: the ``Last-Event-ID`` to send (``None``: none)."""
        self._skip = self._position if self._connected_once else 0
        self._connected_once = True
        return str(self.last_id) if self.last_id > 0 else None

    def accept(self, frame: SSEFrame) -> StreamPart | None:
        """The part to deliver for ``frame``, or ``None`` (a repeat, an id-only frame)."""
        if frame.id is not None and _is_number(frame.id):
            new_id = int(frame.id)
            if new_id <= self.last_id:
                return None  # an event delivered before (never expected from the server)
            self._skip = 0
            part = None if frame.data is None else parse_part(frame.data, frame.id)
            if part is not None:
                self._apply(part)
            self.last_id = new_id
            self._position = self._reopen_length()
            return part
        if frame.data is None:
            return None
        part = parse_part(frame.data, frame.id)
        if part.type == STATUS_PART:
            return part  # a snapshot: sent again on a new connection while it applies
        if self._skip > 0:
            self._skip -= 1
            return None
        self._apply(part)
        self._position += 1
        return part

    def _reopen_length(self) -> int:
        return (
            1
            + int(self._step_open)
            + 2 * len(self._tools)
            + int(self._reasoning_open)
            + int(self._text_open)
        )

    def _apply(self, part: StreamPart) -> None:
        kind = part.type
        if kind == "start-step":
            self._step_open = True
        elif kind == "finish-step":
            self._step_open = False
        elif kind == "text-start":
            self._text_open = True
        elif kind == "text-end":
            self._text_open = False
        elif kind == "reasoning-start":
            self._reasoning_open = True
        elif kind == "reasoning-end":
            self._reasoning_open = False
        elif isinstance(part, ToolInputStartPart):
            self._tools.add(part.tool_call_id)
        elif isinstance(part, ToolOutputAvailablePart | ToolOutputErrorPart):
            self._tools.discard(part.tool_call_id)
