"""The files a task of the ``llm`` agent was given (``input.files``, a chat message's
attachments), shown to the model with the user's message as OpenAI content parts:

* text files (``text/*``, JSON, XML, YAML) inline, each headed by its name, up to
  :data:`MAX_INLINE_CHARS` characters in all (the rest cut, and the model told so);
* images (PNG, JPEG, GIF, WebP) up to :data:`MAX_IMAGE_BYTES` as ``image_url`` parts with a
  ``data:`` URL (for vision models; others may refuse them, which fails the task as any
  rejected request does);
* anything else (PDF, Office, ZIP, larger images) by name, type, size and id only.

Files are read when the run starts a new conversation (a resumed one already holds them;
images are left out of the conversation saved while a person answers).
"""

from __future__ import annotations

import base64
from typing import Any

from processgpt.domain.files import TEXT_LIKE, FileInfo
from processgpt.files.task_files import TaskFiles

MAX_INLINE_CHARS = 100_000
"""Characters of text files put into one task's prompt, in all."""
MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""Images larger than this are described, not shown."""
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def _is_text(info: FileInfo) -> bool:
    return info.content_type.startswith("text/") or info.content_type in TEXT_LIKE


def _describe(info: FileInfo) -> str:
    return f"{info.name} ({info.content_type}, {info.size} bytes, file id {info.id})"


async def attachment_parts(files: TaskFiles) -> list[dict[str, Any]]:
    """The content parts that show the model the task's files (none when it has none)."""
    infos = await files.list()
    if not infos:
        return []
    listing = "\n".join(f"- {_describe(info)}" for info in infos)
    parts: list[dict[str, Any]] = [
        {"type": "text", "text": f"Files given with this task:\n{listing}"}
    ]
    budget = MAX_INLINE_CHARS
    for info in infos:
        if _is_text(info) and budget > 0:
            text = (await files.read(info.id)).decode("utf-8", errors="replace")
            shown = text[:budget]
            budget -= len(shown)
            cut = (
                ""
                if len(shown) == len(text)
                else f"\n[… cut: {len(text) - len(shown)} more characters]"
            )
            parts.append({"type": "text", "text": f"--- {info.name} ---\n{shown}{cut}"})
        elif info.content_type in IMAGE_TYPES and info.size <= MAX_IMAGE_BYTES:
            data = base64.b64encode(await files.read(info.id)).decode("ascii")
            url = f"data:{info.content_type};base64,{data}"
            parts.append({"type": "text", "text": f"--- {info.name} (image) ---"})
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def with_attachments(messages: list[dict[str, Any]], parts: list[dict[str, Any]]) -> None:
    """Put ``parts`` before the text of the last (the user's) message."""
    if not parts:
        return
    last = messages[-1]
    last["content"] = [*parts, {"type": "text", "text": str(last["content"])}]
