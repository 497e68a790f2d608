"""The files of an AI SDK ``useChat`` message: its ``file`` parts (``{type: "file",
mediaType, url, filename?}``) become stored files of the chat, named by id in the turn's
task (``input.attachments``), where agents read them (``context.files``).

* ``data:`` URLs (what ``useChat`` makes of the files a user picks) are decoded and stored
  like an upload: the same size limit (checked before decoding) and content-type checks.
* Links to this server's files (``/v1/files/{id}/content``, e.g. a signed link from
  ``POST /v1/files/{id}/link`` or from a ``file`` part the agent sent) name that file, which
  must be the tenant's; nothing is fetched.
* Any other URL is refused (422 ``url_not_allowed``): the API does not fetch what a tenant
  points at while a request waits (no outbound requests on a tenant's behalf, no slow or
  changing third-party content in a turn). Upload such a file with ``POST /v1/files`` and
  send its link instead.

A message is checked whole before anything is stored; the files stored for a turn that then
does not start (the chat is busy, the message is refused) are deleted again.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from processgpt.db.chats import Chat
from processgpt.domain.errors import (
    FileNotFound,
    FileTooLarge,
    InvalidInput,
    ProcessGPTError,
    UrlNotAllowed,
)
from processgpt.domain.files import MAX_FILES_PER_TASK, FileInfo
from processgpt.files.service import FileService, Owner

log = logging.getLogger(__name__)

_OWN_FILE = re.compile(r"^/v1/files/([0-9a-fA-F-]{36})/content$")
_DATA_URL = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(;[^,;]*)*?)(?P<b64>;base64)?,", re.I)


@dataclass(frozen=True)
class FilePart:
    """A ``file`` part of a UI message."""

    url: str
    media_type: str | None = None
    filename: str | None = None


def file_parts(parts: list[Any]) -> list[FilePart]:
    """The ``file`` parts among a message's ``parts`` (:class:`InvalidInput` for a file part
    without a URL, or more than :data:`MAX_FILES_PER_TASK`)."""
    found: list[FilePart] = []
    for part in parts:
        if not isinstance(part, dict) or part.get("type") != "file":
            continue
        url, media_type, filename = part.get("url"), part.get("mediaType"), part.get("filename")
        if not isinstance(url, str) or not url:
            raise InvalidInput("a file part needs a url", field="messages")
        found.append(
            FilePart(
                url,
                media_type if isinstance(media_type, str) else None,
                filename if isinstance(filename, str) else None,
            )
        )
    if len(found) > MAX_FILES_PER_TASK:
        raise InvalidInput(
            f"a message may carry at most {MAX_FILES_PER_TASK} files", field="messages"
        )
    return found


@dataclass(frozen=True)
class _Inline:
    part: FilePart
    data: bytes
    media_type: str | None


def decode_data_url(url: str, max_bytes: int) -> tuple[bytes, str | None]:
    """The bytes and media type of a ``data:`` URL; :class:`FileTooLarge` past ``max_bytes``
    (judged from the URL's length before anything is decoded), :class:`InvalidInput` for a
    malformed one."""
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidInput("a data: URL needs a comma before its data", field="messages")
    payload = url[match.end() :]
    media_type = match["type"].strip() or None
    if match["b64"]:
        if len(payload) // 4 * 3 > max_bytes + 3:
            raise FileTooLarge(f"files are limited to {max_bytes} bytes")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("a data: URL's base64 is not valid", field="messages") from None
    else:
        if len(payload) > 3 * max_bytes + 3:
            raise FileTooLarge(f"files are limited to {max_bytes} bytes")
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise FileTooLarge(f"files are limited to {max_bytes} bytes")
    return data, media_type


def own_file_id(url: str, origins: set[str]) -> uuid.UUID | None:
    """The file id of a link to this server's file (relative, or on one of ``origins``,
    ``scheme://host[:port]``); None for any other URL."""
    split = urlsplit(url)
    if (split.scheme or split.netloc) and origin_of(url) not in origins:
        return None
    match = _OWN_FILE.match(split.path)
    if match is None:
        return None
    try:
        return uuid.UUID(match[1])
    except ValueError:
        return None


def origin_of(url: str) -> str:
    split = urlsplit(url)
    return f"{split.scheme}://{split.netloc}".lower()


class ChatFiles:
    """Turns a message's file parts into file ids for its turn."""

    def __init__(self, files: FileService, origins: set[str]) -> None:
        """``origins``: where links to this server's files may point (the request's own
        origin and the configured public URL)."""
        self.files = files
        self.origins = origins

    async def store(
        self, chat: Chat, parts: list[FilePart], created_by: str | None
    ) -> tuple[list[FileInfo], list[FileInfo]]:
        """Check every part, then store the inline ones as the chat's files. Returns the
        files in the parts' order (linked ones included), and those stored now. Nothing is
        stored when a part is refused (:class:`FileNotFound` for a link to a file that is
        not the tenant's)."""
        inline: list[_Inline] = []
        linked: list[uuid.UUID] = []
        plan: list[_Inline | uuid.UUID] = []
        for part in parts:
            if part.url[:5].lower() == "data:":
                data, declared = decode_data_url(part.url, self.files.max_bytes)
                item = _Inline(part, data, part.media_type or declared)
                inline.append(item)
                plan.append(item)
                continue
            file_id = own_file_id(part.url, self.origins)
            if file_id is None:
                raise UrlNotAllowed(
                    "file parts must be data: URLs or links to this server's files "
                    "(/v1/files/{id}/content); upload other files with POST /v1/files first"
                )
            linked.append(file_id)
            plan.append(file_id)
        known = {f.id: f for f in await self.files.repo.by_ids(chat.tenant_id, linked)}
        for file_id in linked:
            if file_id not in known:
                raise FileNotFound(file_id)
        owner = Owner(chat_id=chat.id, created_by=created_by)
        stored: dict[int, FileInfo] = {}
        try:
            for item in inline:
                stored[id(item)] = await self.files.upload_bytes(
                    chat.tenant_id, item.part.filename or "file", item.data, item.media_type, owner
                )
        except BaseException:
            await self.forget(chat.tenant_id, list(stored.values()))
            raise
        infos = [known[p] if isinstance(p, uuid.UUID) else stored[id(p)] for p in plan]
        return infos, list(stored.values())

    async def forget(self, tenant_id: str, infos: list[FileInfo]) -> None:
        """Delete files stored for a turn that did not start (failures are logged: the
        bytes and rows are then left, never a row without bytes)."""
        for info in infos:
            try:
                await self.files.delete(tenant_id, info.id)
            except ProcessGPTError as exc:
                log.error("chat file not deleted file=%s error=%s", info.id, exc.code)
