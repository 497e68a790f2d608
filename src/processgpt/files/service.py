"""Files as a whole: bytes in a :class:`~processgpt.files.storage.FileStorage`, metadata and
access control in Postgres (:class:`~processgpt.db.files.FileRepository`).

:meth:`FileService.upload` streams: it looks at the first bytes to decide the content type
(refusing before anything is stored), then passes the bytes on to the backend while counting
and hashing them, and stops the upload (nothing kept) the moment the size limit is passed.
The row is written once the bytes are stored; if that fails the bytes are deleted again. A
crash between the two leaves bytes without a row (never a row without bytes): garbage, not a
file anyone was told exists.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from processgpt.config import FileSettings
from processgpt.db.database import Database
from processgpt.db.documents import DocumentRepository
from processgpt.db.files import FileRepository, NewFile, StoredFile
from processgpt.db.secret_box import SecretBox
from processgpt.domain.errors import (
    FileNotFound,
    FileTooLarge,
    InvalidInput,
    LinkInvalid,
    StorageUnavailable,
)
from processgpt.domain.files import (
    SNIFF_BYTES,
    FileInfo,
    clean_name,
    decide_content_type,
    sign_link,
    verify_link,
)
from processgpt.files.storage import FileStorage, LocalStorage, new_key

log = logging.getLogger(__name__)

LINK_PURPOSE = "file-links"
"""What the link-signing key is derived for (see :meth:`SecretBox.derived_keys`)."""


def open_storage(settings: FileSettings, data_dir: Path) -> FileStorage:
    """The backend ``settings`` name (``data_dir``: the default home of the local one)."""
    if settings.storage == "s3":
        if not settings.s3_bucket:
            raise InvalidInput("PROCESSGPT_FILES_S3_BUCKET is required with storage s3")
        from processgpt.files.s3 import S3Storage  # noqa: PLC0415 - boto3 only when used

        secret = settings.s3_secret_access_key
        return S3Storage(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    return LocalStorage(settings.dir or data_dir / "files")


@dataclass(frozen=True)
class Owner:
    """What a new file belongs to besides its tenant, and who made it."""

    task_id: uuid.UUID | None = None
    chat_id: str | None = None
    proc_inst_id: uuid.UUID | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires_at: int
    """Unix seconds."""


class FileService:
    def __init__(
        self,
        repo: FileRepository,
        storage: FileStorage,
        settings: FileSettings,
        link_keys: Callable[[], list[bytes]],
    ) -> None:
        """``link_keys``: the keys signed links are made (first) and checked (all) with,
        derived from the deployment's secret keys."""
        self.repo = repo
        self.documents = DocumentRepository(repo.db)
        """Documents (metadata and text, optionally one of these files)."""
        self.storage = storage
        self.settings = settings
        self.max_bytes = settings.max_bytes
        self.allowed = settings.allowed()
        self._link_keys = link_keys

    @classmethod
    def configured(
        cls, db: Database, settings: FileSettings, data_dir: Path, box: SecretBox
    ) -> FileService:
        """The files of a process: the storage ``settings`` name, links signed with a key
        derived from the deployment's secret keys (``box``)."""
        return cls(
            FileRepository(db),
            open_storage(settings, data_dir),
            settings,
            lambda: box.derived_keys(LINK_PURPOSE),
        )

    # -- writing ---------------------------------------------------------------------------

    async def upload(
        self,
        tenant_id: str,
        name: str | None,
        declared_type: str | None,
        chunks: AsyncIterator[bytes],
        owner: Owner | None = None,
    ) -> FileInfo:
        """Store a file. :class:`UnsupportedMediaType` (nothing read past the first bytes)
        and :class:`FileTooLarge` (the upload is stopped) store nothing."""
        owner = owner or Owner()
        shown = clean_name(name)
        head = bytearray()
        async for chunk in chunks:
            head += chunk
            if len(head) >= SNIFF_BYTES:
                break
        content_type = decide_content_type(declared_type, shown, bytes(head), self.allowed)
        file_id = uuid.uuid4()
        key = new_key(file_id)
        digest = hashlib.sha256()
        size = 0
        limit = self.max_bytes

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            first = bytes(head)
            async for chunk in _prepend(first, chunks):
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(f"files are limited to {limit} bytes")
                digest.update(chunk)
                yield chunk

        await self.storage.put(key, counted())
        new = NewFile(
            id=file_id,
            tenant_id=tenant_id,
            name=shown,
            content_type=content_type,
            size=size,
            sha256=digest.hexdigest(),
            storage=self.storage.name,
            storage_key=key,
            task_id=owner.task_id,
            chat_id=owner.chat_id,
            proc_inst_id=owner.proc_inst_id,
            created_by=owner.created_by,
        )
        try:
            stored = await self.repo.insert(new)
        except BaseException:
            await self._forget_bytes(key)
            raise
        log.info(
            "file stored tenant=%s file=%s type=%s size=%d storage=%s",
            tenant_id,
            file_id,
            content_type,
            size,
            self.storage.name,
        )
        return stored.info

    async def upload_bytes(
        self,
        tenant_id: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        owner: Owner | None = None,
    ) -> FileInfo:
        """:meth:`upload` of bytes already in memory (an agent's small outputs)."""

        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.upload(tenant_id, name, content_type, one(), owner)

    async def delete(self, tenant_id: str, file_id: uuid.UUID) -> None:
        """Delete the file: its row (at once: nobody can read it any more), then its bytes."""
        stored = await self.repo.delete(tenant_id, file_id)
        await self._forget_bytes(stored.storage_key, stored.storage)
        log.info("file deleted tenant=%s file=%s", tenant_id, file_id)

    async def _forget_bytes(self, key: str, storage: str | None = None) -> None:
        if storage is not None and storage != self.storage.name:
            log.warning("file bytes left in another storage storage=%s key=%s", storage, key)
            return
        try:
            await self.storage.delete(key)
        except StorageUnavailable:
            log.error("file bytes left behind key=%s (delete them by hand)", key)

    # -- reading ---------------------------------------------------------------------------

    async def info(self, tenant_id: str, file_id: uuid.UUID) -> FileInfo:
        return (await self.repo.get(tenant_id, file_id)).info

    async def open(
        self, tenant_id: str, file_id: uuid.UUID
    ) -> tuple[FileInfo, AsyncIterator[bytes]]:
        """The file and its bytes (:class:`FileNotFound` for another tenant's)."""
        stored = await self.repo.get(tenant_id, file_id)
        return stored.info, await self._bytes(stored)

    async def read_bytes(self, tenant_id: str, file_id: uuid.UUID) -> bytes:
        """The whole file in memory (files are at most ``max_bytes``)."""
        _info, chunks = await self.open(tenant_id, file_id)
        return b"".join([chunk async for chunk in chunks])

    async def _bytes(self, stored: StoredFile) -> AsyncIterator[bytes]:
        if stored.storage != self.storage.name:
            log.error(
                "file in another storage file=%s storage=%s configured=%s",
                stored.info.id,
                stored.storage,
                self.storage.name,
            )
            raise StorageUnavailable("the file is kept in a storage this server does not use")
        chunks = self.storage.get(stored.storage_key)
        # Read the first chunk now, so that a missing object is an error answer, not a
        # response that breaks after its headers.
        first = await anext(chunks, b"")
        return _prepend(first, chunks)

    # -- signed links ----------------------------------------------------------------------

    def link(
        self, tenant_id: str, file_id: uuid.UUID, base_url: str, seconds: int | None = None
    ) -> SignedLink:
        """A URL that downloads the tenant's file without an API key for ``seconds``
        (default: the setting), starting with ``public_url`` (if set) or ``base_url``. Made
        without a lookup: a link to a file that is not the tenant's never works."""
        ttl = seconds or self.settings.link_seconds
        expires = int(time.time()) + ttl
        signature = sign_link(self._link_keys()[0], tenant_id, file_id, expires)
        base = (self.settings.public_url or base_url).rstrip("/")
        query = urlencode({"expires": expires, "signature": signature})
        return SignedLink(f"{base}/v1/files/{file_id}/content?{query}", expires)

    def link_maker(self, tenant_id: str, base_url: str) -> Callable[[dict[str, Any]], str | None]:
        """For streams: the signed URL of the file a ``file`` event names (``file_id``), or
        None when it names none."""

        def url(event_data: dict[str, Any]) -> str | None:
            try:
                file_id = uuid.UUID(str(event_data.get("file_id")))
            except ValueError:
                return None
            return self.link(tenant_id, file_id, base_url).url

        return url

    async def open_link(
        self, file_id: uuid.UUID, expires: int, signature: str
    ) -> tuple[FileInfo, AsyncIterator[bytes]]:
        """The file a signed link names, once its signature and expiry are checked
        (:class:`LinkInvalid`, :class:`LinkExpired`; a link to a deleted file is invalid)."""
        try:
            stored = await self.repo.get_for_link(file_id)
        except FileNotFound:
            raise LinkInvalid("the link's signature is not valid") from None
        verify_link(
            self._link_keys(), stored.info.tenant_id, file_id, expires, signature, now=time.time()
        )
        return stored.info, await self._bytes(stored)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
