"""The conversation the ``llm`` agent holds with its model: the first messages of a task, the
form contract, the built-in ``ask_human`` tool, and the state saved while a person answers.

Messages are plain Chat Completions JSON (``{"role": …, "content": …}``, assistant messages
with ``tool_calls``, ``tool`` messages with ``tool_call_id``), so a saved conversation can be
stored in the task's draft and sent back unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

ASK_HUMAN = "ask_human"
STATE_KEY = "llm_conversation"
"""The draft key holding ``{"messages": [...], "ask_call_id": …}`` while a person answers."""

ASK_HUMAN_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": ASK_HUMAN,
        "description": (
            "Ask a person a question and wait for the answer. Use it for approvals, missing "
            "information or choices only a person can make."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The question to ask."},
                "type": {
                    "type": "string",
                    "enum": ["text", "select", "confirm"],
                    "description": "text: free answer; select: one of options; confirm: yes/no",
                },
                "options": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The choices, for type select.",
                },
            },
            "required": ["question"],
        },
    },
}

_HISTORY_ROLES = {"user": "user", "assistant": "assistant", "agent": "assistant"}
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def initial_messages(
    instructions: str,
    form_fields: Sequence[Mapping[str, Any]],
    row: Mapping[str, Any],
    extras: Mapping[str, Any],
    query: str,
) -> list[dict[str, Any]]:
    """System prompt (instructions, task description, form contract, reviewer feedback, an
    earlier human answer), then ``input.history``, then the query."""
    system = [instructions.strip()]
    description = row.get("description")
    if isinstance(description, str) and description.strip() and description.strip() != query:
        system.append(f"Task description:\n{description.strip()}")
    if form_fields:
        system.append(form_instructions(form_fields))
    memory = extras.get("memory")
    if isinstance(memory, Mapping) and memory.get("block"):
        system.append(
            "What you were taught and learned from earlier feedback (follow it; the ids "
            "are for reference):\n" + str(memory["block"])
        )
    feedback = extras.get("feedback")
    if feedback:
        system.append(
            "A reviewer gave feedback on an earlier answer to this task; take it into account:\n"
            + as_text(feedback)
        )
    if extras.get("human_response") is not None:
        system.append(
            "A person already answered a question about this task:\n"
            + as_text(extras["human_response"])
        )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "\n\n".join(s for s in system if s)}
    ]
    history = (row.get("input") or {}).get("history")
    if isinstance(history, list):
        for item in history:
            if not isinstance(item, Mapping):
                continue
            role = _HISTORY_ROLES.get(str(item.get("role")))
            text = item.get("text", item.get("content"))
            if role and isinstance(text, str):
                messages.append({"role": role, "content": text})
    messages.append({"role": "user", "content": query})
    return messages


def form_instructions(form_fields: Sequence[Mapping[str, Any]]) -> str:
    """Tell the model to answer with a JSON object with the form's fields."""
    lines = [
        "Your final answer fills in a form. Reply with only a JSON object (no prose, no code "
        "fences) whose keys are these fields:"
    ]
    for item in form_fields:
        key = item.get("key") or item.get("name") or item.get("id")
        if not key:
            continue
        label = item.get("text") or item.get("label") or ""
        kind = item.get("type") or "text"
        line = f"- {key} ({kind})" + (f": {label}" if label else "")
        choices = item.get("options")
        if isinstance(choices, list) and choices:
            line += f"; one of {json.dumps(choices, ensure_ascii=False)}"
        lines.append(line)
    return "\n".join(lines)


def form_reminder(form_fields: Sequence[Mapping[str, Any]]) -> str:
    return "That was not a JSON object. " + form_instructions(form_fields)


def form_answer(text: str) -> dict[str, Any] | None:
    """The JSON object in the model's answer (code fences tolerated), or None."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        value = json.loads(stripped[start : end + 1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def tool_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    """A tool call's arguments as an object, and what is wrong with them (None if nothing)."""
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {"raw": raw}, "the tool arguments are not valid JSON"
    if not isinstance(value, dict):
        return {"raw": value}, "the tool arguments must be a JSON object"
    return value, None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def human_question(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The ``human_asked`` event data (ProcessGPT shape) for an ``ask_human`` call."""
    kind = arguments.get("type")
    options = arguments.get("options")
    return {
        "role": "agent",
        "text": str(arguments["question"]),
        "type": kind if kind in ("text", "select", "confirm") else "text",
        "options": [str(o) for o in options] if isinstance(options, list) else [],
    }


def saved_state(messages: list[dict[str, Any]], ask_call_id: str) -> dict[str, Any]:
    """The draft that keeps the conversation while a person answers ``ask_call_id``. Images
    given inline (attached files) are left out, so a draft stays small: the resumed model
    sees that an image was there, not the image."""
    kept = [_without_images(m) for m in messages]
    return {STATE_KEY: {"messages": kept, "ask_call_id": ask_call_id}}


def _without_images(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = [
        {"type": "text", "text": "[an image was shown here]"}
        if isinstance(p, Mapping) and p.get("type") == "image_url"
        else p
        for p in content
    ]
    return {**message, "content": parts}


def resumed(draft: Any, answer: Any) -> tuple[list[dict[str, Any]], str] | None:
    """The saved conversation with ``answer`` appended as the result of the pending
    ``ask_human`` call, and that call's id; None when there is nothing to resume."""
    saved = draft.get(STATE_KEY) if isinstance(draft, Mapping) else None
    if answer is None or not isinstance(saved, Mapping):
        return None
    messages = saved.get("messages")
    call_id = saved.get("ask_call_id")
    if not isinstance(messages, list) or not isinstance(call_id, str):
        return None
    answered = {"role": "tool", "tool_call_id": call_id, "content": as_text(answer)}
    return [*messages, answered], call_id
