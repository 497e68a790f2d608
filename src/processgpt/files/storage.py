"""Where files' bytes are kept: the :class:`FileStorage` protocol and the local filesystem.

Keys are made by the server (:func:`new_key`), never from a user's file name, and checked
again by every backend before use, so a key can never point outside the storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from processgpt.domain.errors import StorageUnavailable

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
"""Bytes read or written at a time."""
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}$")
_LEFTOVER = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/\.[0-9a-f]{32}\.[0-9a-f]{8}\.part$")
"""A local upload's temporary name (:meth:`LocalStorage.put`), left behind by a crash."""


def new_key(file_id: uuid.UUID) -> str:
    """The storage key of a new file: ``ab/cd/<32 hex>``, spread over directories."""
    hexid = file_id.hex
    # The last hex digits of a UUIDv7 are random; its first ones are a timestamp.
    return f"{hexid[-2:]}/{hexid[-4:-2]}/{hexid}"


def check_key(key: str) -> str:
    """``key`` if it is one :func:`new_key` makes; ``ValueError`` otherwise."""
    if not _KEY.match(key):
        raise ValueError("not a storage key")
    return key


@dataclass(frozen=True)
class StoredObject:
    """Bytes a backend holds: their key and when they were last written (Unix seconds)."""

    key: str
    modified: float


class FileStorage(Protocol):
    """A place for files' bytes. Implementations stream: no call holds a whole file."""

    name: str
    """The ``files.storage`` value of what this backend stores (``local``, ``s3``)."""

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        """Store everything ``chunks`` yields under ``key``, whole or not at all: when
        ``chunks`` raises (a size limit, a client gone) or the backend fails, nothing stays
        stored and the error propagates (backend failures as :class:`StorageUnavailable`)."""
        ...

    def get(self, key: str) -> AsyncIterator[bytes]:
        """The bytes under ``key``, a chunk at a time (:class:`StorageUnavailable` when
        they cannot be read, or are missing)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``'s bytes; a missing key is not an error. Takes every key
        :meth:`stored` yields."""
        ...

    def stored(self) -> AsyncIterator[StoredObject]:
        """Every object the backend holds under this storage (for the orphan sweeper): keys
        :func:`new_key` made, and what a crashed upload may have left (a local temporary
        file), a page at a time (:class:`StorageUnavailable` when it cannot be listed)."""
        ...


class LocalStorage:
    """Files in a directory of this machine (every API and worker process must see the same
    directory: a shared volume when they run on several hosts). A file is written to a
    temporary name beside its key, flushed to disk, then renamed into place."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        path = self._path(key)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            handle = await asyncio.to_thread(_open_new, partial)
        except OSError as exc:
            log.error("file storage not writable root=%s error=%s", self.root, exc)
            raise StorageUnavailable("the file storage is not writable") from None
        try:
            try:
                async for chunk in chunks:
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(_finish, handle, partial, path)
            except OSError as exc:
                log.error("file storage write failed root=%s error=%s", self.root, exc)
                raise StorageUnavailable("the file storage failed while writing") from None
        except BaseException:
            with contextlib.suppress(OSError):
                handle.close()
                partial.unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except OSError as exc:
            log.error("file bytes unreadable key=%s error=%s", key, type(exc).__name__)
            raise StorageUnavailable("the file's bytes cannot be read from storage") from None
        try:
            while True:
                chunk = await asyncio.to_thread(handle.read, CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        path = self.root / key if _LEFTOVER.match(key) else self._path(key)
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as exc:
            log.error("file bytes not deleted key=%s error=%s", key, type(exc).__name__)
            raise StorageUnavailable("the file's bytes could not be deleted") from None

    async def stored(self) -> AsyncIterator[StoredObject]:
        try:
            found = await asyncio.to_thread(_walk, self.root)
        except OSError as exc:
            log.error("file storage not listable root=%s error=%s", self.root, exc)
            raise StorageUnavailable("the file storage cannot be listed") from None
        for item in found:
            yield item


def _walk(root: Path) -> list[StoredObject]:
    """The storage's files (two levels of directories, as :func:`new_key` spreads them)."""
    found: list[StoredObject] = []
    if not root.is_dir():
        return found
    for first in os.scandir(root):
        if not (first.is_dir(follow_symlinks=False) and len(first.name) == 2):
            continue
        for second in os.scandir(first.path):
            if not (second.is_dir(follow_symlinks=False) and len(second.name) == 2):
                continue
            for entry in os.scandir(second.path):
                key = f"{first.name}/{second.name}/{entry.name}"
                if entry.is_file(follow_symlinks=False) and (
                    _KEY.match(key) or _LEFTOVER.match(key)
                ):
                    found.append(StoredObject(key, entry.stat(follow_symlinks=False).st_mtime))
    return found


def _open_new(path: Path) -> BinaryIO:
    """A new file (never an existing one, never through a link), its directories made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o600), "wb")


def _finish(handle: BinaryIO, partial: Path, path: Path) -> None:
    """Flush the file to disk and give it its name (the rename is durable too)."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
