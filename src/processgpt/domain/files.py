"""Files: what a stored file is, how its content type is decided, and signed download links.

Pure rules, no I/O. The bytes live in a storage backend (:mod:`processgpt.files`), the metadata
in Postgres (``files``, :mod:`processgpt.db.files`).

Content types are never taken on the client's word: :func:`decide_content_type` looks at the
first bytes (:func:`sniff`) and accepts the declared type only when the bytes agree with it
(a PNG must start like a PNG, an Office document like a ZIP, text must be UTF-8 without HTML
in it); then the type must be one the deployment allows.

A signed link (:func:`sign_link`, :func:`verify_link`) names a file and an expiry and carries
an HMAC-SHA256 over both and the file's tenant, under a key derived from the deployment's
secret keys: it downloads the file without an API key until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from processgpt.domain.errors import InvalidInput, LinkExpired, LinkInvalid, UnsupportedMediaType

SNIFF_BYTES = 4096
"""How many leading bytes :func:`sniff` looks at."""
MAX_NAME_CHARS = 255
MAX_FILES_PER_TASK = 20
"""Files one task or chat message may name."""

OCTET_STREAM = "application/octet-stream"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
    (b"\x1f\x8b", "application/gzip"),
)

ZIP_BASED = frozenset(
    {
        "application/zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/epub+zip",
    }
)
"""Types whose files are ZIP archives."""

TEXT_LIKE = frozenset(
    {"application/json", "application/xml", "application/yaml", "application/x-yaml"}
)
"""Types outside ``text/*`` whose files are plain text."""

_HTML_MARKERS = re.compile(
    rb"<\s*(!doctype\s+html|html|head|body|script|iframe|svg|object|embed|meta|link|style)\b",
    re.IGNORECASE,
)

DEFAULT_ALLOWED_TYPES = (
    "text/plain",
    "text/csv",
    "text/markdown",
    "application/json",
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)

_EXTENSIONS = {
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".zip": "application/zip",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}


class FileInfo(BaseModel):
    """A stored file as callers see it (never where its bytes are kept)."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    tenant_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    task_id: uuid.UUID | None = None
    chat_id: str | None = None
    proc_inst_id: uuid.UUID | None = None
    created_at: datetime
    created_by: str | None = None


def normalise_type(value: str | None) -> str | None:
    """``type/subtype`` in lower case without parameters; None when absent or malformed."""
    if not value:
        return None
    main = value.split(";", 1)[0].strip().lower()
    return main if re.fullmatch(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*", main) else None


def type_from_name(name: str) -> str | None:
    """The content type a file name's extension suggests (None: unknown)."""
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:].lower()) if dot >= 0 else None


def sniff(head: bytes) -> str:
    """What the first bytes of a file are: a type from its magic number, ``text/html`` for
    text with markup a browser would run, ``text/plain`` for other UTF-8 text, else
    :data:`OCTET_STREAM`."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    text = head.removeprefix(b"\xef\xbb\xbf")
    if b"\x00" in text:
        return OCTET_STREAM
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is still text.
        if exc.start < len(text) - 3 or len(head) < SNIFF_BYTES:
            return OCTET_STREAM
    if _HTML_MARKERS.search(text):
        return "text/html"
    return "text/plain"


def _agrees(declared: str, sniffed: str) -> bool:
    if declared == sniffed:
        return True
    if sniffed == "application/zip":
        return declared in ZIP_BASED
    if sniffed == "text/plain":
        return (declared.startswith("text/") and declared != "text/html") or declared in TEXT_LIKE
    if sniffed == "text/html":
        return False  # markup is only ever text/html: never passed off as plain text
    return sniffed == OCTET_STREAM and declared == OCTET_STREAM


def decide_content_type(
    declared: str | None, name: str, head: bytes, allowed: Iterable[str]
) -> str:
    """The content type to store for a file named ``name`` whose first bytes are ``head``.

    The declared type (or, when none or ``application/octet-stream`` is declared, the type
    the name suggests) is kept when the bytes agree with it; with nothing declared the sniffed
    type is used. Raises :class:`UnsupportedMediaType` when the bytes contradict the declared
    type, or the type is not in ``allowed``."""
    sniffed = sniff(head)
    wanted = normalise_type(declared)
    if wanted in (None, OCTET_STREAM):
        wanted = type_from_name(name) or (wanted if sniffed == OCTET_STREAM else None)
        if wanted is not None and not _agrees(wanted, sniffed):
            wanted = None  # a misleading extension: go by the bytes
    if wanted is None:
        wanted = sniffed
    elif not _agrees(wanted, sniffed):
        raise UnsupportedMediaType(
            f"the file is declared {wanted} but its content is {_describe(sniffed)}"
        )
    allowed_set = frozenset(allowed)
    if wanted not in allowed_set:
        raise UnsupportedMediaType(
            f"{wanted} files are not accepted (allowed: {', '.join(sorted(allowed_set))})"
        )
    return wanted


def _describe(sniffed: str) -> str:
    if sniffed == OCTET_STREAM:
        return "binary data of an unknown kind"
    if sniffed == "text/html":
        return "HTML"
    return sniffed


def clean_name(name: str | None) -> str:
    """A file name fit to store and show: the last path component, without control
    characters, at most :data:`MAX_NAME_CHARS`; ``file`` when nothing is left. Names are
    only ever shown: storage keys are made by the server."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    base = base.lstrip(".") or "file"
    return base[:MAX_NAME_CHARS]


def content_disposition(name: str) -> str:
    """``attachment`` with the name as ASCII fallback and RFC 5987 UTF-8 form."""
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace('"', "'")
    ascii_name = ascii_name.replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_file_ids(value: Any, field: str) -> list[uuid.UUID]:
    """A list of file ids as given in a task's input or a chat message (strings), at most
    :data:`MAX_FILES_PER_TASK`, duplicates dropped; :class:`InvalidInput` otherwise."""
    if not isinstance(value, list) or len(value) > MAX_FILES_PER_TASK:
        raise InvalidInput(
            f"{field} must be a list of at most {MAX_FILES_PER_TASK} file ids", field=field
        )
    ids: list[uuid.UUID] = []
    for item in value:
        try:
            parsed = uuid.UUID(str(item)) if isinstance(item, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise InvalidInput(f"{field}: {str(item)[:60]!r} is not a file id", field=field)
        if parsed not in ids:
            ids.append(parsed)
    return ids


def named_file_ids(task_input: Any) -> list[uuid.UUID]:
    """The file ids a task's input names (``files``, and a chat message's ``attachments``
    that are file ids); anything else in those lists is ignored."""
    if not isinstance(task_input, dict):
        return []
    found: list[uuid.UUID] = []
    for key in ("files", "attachments"):
        values = task_input.get(key)
        for value in values if isinstance(values, list) else []:
            try:
                parsed = uuid.UUID(value) if isinstance(value, str) else None
            except ValueError:
                parsed = None
            if parsed is not None and parsed not in found:
                found.append(parsed)
    return found


# -- signed links ------------------------------------------------------------------------


def _mac(key: bytes, tenant_id: str, file_id: uuid.UUID, expires: int) -> str:
    message = f"file:{tenant_id}:{file_id}:{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_link(key: bytes, tenant_id: str, file_id: uuid.UUID, expires: int) -> str:
    """The signature of a link to ``file_id`` (of ``tenant_id``) valid until ``expires``
    (Unix seconds)."""
    return _mac(key, tenant_id, file_id, expires)


def verify_link(
    keys: Sequence[bytes],
    tenant_id: str,
    file_id: uuid.UUID,
    expires: int,
    signature: str,
    *,
    now: float,
) -> None:
    """Raise :class:`LinkInvalid` unless one of ``keys`` made ``signature`` for this file and
    expiry, and :class:`LinkExpired` when it did but ``expires`` has passed. The comparison
    takes the same time whatever the signature."""
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(_mac(key, tenant_id, file_id, expires), signature)
    if not valid:
        raise LinkInvalid("the link's signature is not valid")
    if now >= expires:
        raise LinkExpired("the link has expired: ask for a new one")
