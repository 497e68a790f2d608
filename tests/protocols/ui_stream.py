"""A strict reader of the Vercel AI SDK UI message stream (v1), with the rules the `ai`
client enforces: known part types with exactly their fields, deltas only inside their
start/end, tool outputs only for known calls, SSE ids increasing and only on frames with
data, ``[DONE]`` last."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

REQUIRED: dict[str, set[str]] = {
    "start": set(),
    "finish": set(),
    "start-step": set(),
    "finish-step": set(),
    "abort": set(),
    "text-start": {"id"},
    "text-delta": {"id", "delta"},
    "text-end": {"id"},
    "reasoning-start": {"id"},
    "reasoning-delta": {"id", "delta"},
    "reasoning-end": {"id"},
    "tool-input-start": {"toolCallId", "toolName"},
    "tool-input-delta": {"toolCallId", "inputTextDelta"},
    "tool-input-available": {"toolCallId", "toolName", "input"},
    "tool-output-available": {"toolCallId", "output"},
    "tool-output-error": {"toolCallId", "errorText"},
    "error": {"errorText"},
    "file": {"url", "mediaType"},
    "message-metadata": {"messageMetadata"},
}
OPTIONAL: dict[str, set[str]] = {
    "start": {"messageId", "messageMetadata"},
    "finish": {"finishReason", "messageMetadata"},
    "abort": {"reason"},
}
FINISH_REASONS = {"stop", "length", "content-filter", "tool-calls", "error", "other"}


@dataclass
class Frame:
    id: int | None
    data: str


@dataclass
class UIStream:
    parts: list[dict[str, Any]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    done: bool = False
    comments: int = 0

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.parts if p["type"] == kind]

    @property
    def text(self) -> str:
        return "".join(p["delta"] for p in self.of_type("text-delta"))


def parse_frames(raw: str) -> tuple[list[Frame], int]:
    frames: list[Frame] = []
    comments = 0
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        event_id: int | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data.append(line[6:])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        if data or event_id is not None:
            frames.append(Frame(event_id, "\n".join(data)))
    return frames, comments


def validate(raw: str, *, after: int = 0) -> UIStream:
    """Parse and check a whole stream; raise AssertionError on the first violation."""
    frames, comments = parse_frames(raw)
    result = UIStream(comments=comments)
    open_text: set[str] = set()
    open_reasoning: set[str] = set()
    tools_started: set[str] = set()
    tools_available: set[str] = set()
    started = False
    last_id = after
    for frame in frames:
        assert not result.done, "frames after [DONE]"
        if frame.id is not None:
            assert frame.id > last_id, f"ids must increase: {frame.id} after {last_id}"
            # The `ai` client's SSE parser drops a frame without data, id and all.
            assert frame.data, f"a frame with id {frame.id} and no data"
            last_id = frame.id
            result.ids.append(frame.id)
        if not frame.data:
            continue
        if frame.data == "[DONE]":
            result.done = True
            continue
        part = json.loads(frame.data)
        kind = part.get("type", "")
        keys = set(part) - {"type"}
        if kind.startswith("data-"):
            assert "data" in part and keys <= {"data", "id", "transient"}, part
        else:
            assert kind in REQUIRED, f"unknown part type {kind!r}"
            assert REQUIRED[kind] <= keys <= REQUIRED[kind] | OPTIONAL.get(kind, set()), part
        if kind == "start":
            started = True
        else:
            assert started, f"{kind} before start"
        if kind == "finish" and "finishReason" in part:
            assert part["finishReason"] in FINISH_REASONS, part
        if kind == "text-start":
            open_text.add(part["id"])
        elif kind in ("text-delta", "text-end"):
            assert part["id"] in open_text, f"{kind} without text-start: {part}"
            if kind == "text-end":
                open_text.discard(part["id"])
        elif kind == "reasoning-start":
            open_reasoning.add(part["id"])
        elif kind in ("reasoning-delta", "reasoning-end"):
            assert part["id"] in open_reasoning, part
            if kind == "reasoning-end":
                open_reasoning.discard(part["id"])
        elif kind == "tool-input-start":
            tools_started.add(part["toolCallId"])
        elif kind == "tool-input-available":
            assert part["toolCallId"] in tools_started, part
            tools_available.add(part["toolCallId"])
        elif kind in ("tool-output-available", "tool-output-error"):
            assert part["toolCallId"] in tools_started, f"output for an unknown call: {part}"
        result.parts.append(part)
    return result
