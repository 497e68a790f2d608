"""files/sweeper.py and retention's files, with real storage (a local directory, and moto's
S3 server): retention deletes the files of the tasks and instances it deletes, rows and bytes
(a file a document names stays); the sweep deletes bytes no row names once they are older
than the grace, and nothing else."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from processgpt.config import FileSettings
from processgpt.db.database import Database
from processgpt.db.documents import DocumentRepository, NewDocument
from processgpt.db.files import FileRepository
from processgpt.db.retention import RetentionRepository
from processgpt.db.tenants import TenantRepository
from processgpt.domain.errors import StorageUnavailable
from processgpt.files.service import FileService, Owner
from processgpt.files.storage import FileStorage, LocalStorage, StoredObject, new_key
from processgpt.files.sweeper import forget_bytes, sweep_orphans
from processgpt.runtime.retention import RetentionJob, RetentionOptions
from tests.db.test_retention import add_instance, add_task
from tests.files.test_storage import chunks_of, read_all, s3_storage
from tests.s3_server import S3Server


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server
) -> FileStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    return s3_storage(s3_server, s3_server.new_bucket())


@pytest.fixture
async def files(db: Database, storage: FileStorage) -> FileService:
    await TenantRepository(db).ensure("acme")
    return FileService(FileRepository(db), storage, FileSettings(), lambda: [b"k" * 32])


async def keys_of(storage: FileStorage) -> set[str]:
    return {item.key async for item in storage.stored()}


async def upload(files: FileService, name: str, owner: Owner | None = None) -> uuid.UUID:
    info = await files.upload_bytes("acme", name, b"data of " + name.encode(), "text/plain", owner)
    return info.id


async def key_of(db: Database, file_id: uuid.UUID) -> str:
    key: str = await db.fetchval("SELECT storage_key FROM files WHERE id = $1", file_id)
    return key


async def test_retention_deletes_the_files_of_the_work_it_deletes(
    db: Database, files: FileService, storage: FileStorage
) -> None:
    old_task = await add_task(db, "acme", "DONE", age_days=40)
    new_task = await add_task(db, "acme", "DONE", age_days=1)
    instance = await add_instance(db, "acme", "COMPLETED", age_days=50, ended_days=40)
    step = await add_task(db, "acme", "DONE", age_days=50, finished_days=45, instance=instance)
    gone = [
        await upload(files, "a.txt", Owner(task_id=old_task)),
        await upload(files, "b.txt", Owner(task_id=old_task)),
        await upload(files, "c.txt", Owner(proc_inst_id=instance)),
        await upload(files, "d.txt", Owner(task_id=step)),
    ]
    kept = [
        await upload(files, "e.txt", Owner(task_id=new_task)),
        await upload(files, "f.txt"),  # no owner: the tenant's until deleted
        await upload(files, "g.txt", Owner(task_id=old_task)),  # a document's file
    ]
    await DocumentRepository(db).insert(
        "acme", NewDocument(title="kept", file_id=kept[-1]), task_id=old_task
    )
    gone_keys = {await key_of(db, f) for f in gone}
    kept_keys = {await key_of(db, f) for f in kept}
    assert await keys_of(storage) == gone_keys | kept_keys

    job = RetentionJob(RetentionRepository(db), RetentionOptions(default_days=30, batch=1), storage)
    preview = await job.preview()
    assert preview["acme"][1].files == 4
    removed = await job.run_once()

    assert removed is not None and removed["acme"].files == 4
    rows = await db.fetch("SELECT id FROM files")
    assert {r["id"] for r in rows} == set(kept)
    assert await keys_of(storage) == kept_keys
    for file_id in kept:
        assert (await files.read_bytes("acme", file_id)).startswith(b"data of ")
    # The document keeps its file; its task is gone.
    doc = await db.fetchrow("SELECT todo_id, file_id FROM documents")
    assert (doc["todo_id"], doc["file_id"]) == (None, kept[-1])
    assert job.swept is not None and job.swept.deleted == 0
    assert (await job.run_once()) == {}


async def test_the_sweep_deletes_old_orphan_bytes_only(
    db: Database, files: FileService, storage: FileStorage
) -> None:
    named = await upload(files, "named.txt")
    named_key = await key_of(db, named)
    # Orphans: bytes whose row went (a crash after the row's deletion), bytes whose row was
    # never written (a crash after the upload's bytes).
    deleted = await upload(files, "deleted.txt")
    deleted_key = await key_of(db, deleted)
    await db.execute("DELETE FROM files WHERE id = $1", deleted)
    never = new_key(uuid.uuid4())
    await storage.put(never, chunks_of(b"never named"))

    # Within the grace nothing is touched (an upload writes its row after its bytes).
    swept = await sweep_orphans(files.repo, storage, grace=3600)
    assert (swept.seen, swept.deleted) == (3, 0)
    assert await keys_of(storage) == {named_key, deleted_key, never}

    swept = await sweep_orphans(files.repo, storage, grace=0)
    assert (swept.seen, swept.deleted, swept.failed) == (3, 2, 0)
    assert await keys_of(storage) == {named_key}
    assert await read_all(storage, named_key) == b"data of named.txt"


async def test_a_retention_pass_sweeps(
    db: Database, files: FileService, storage: FileStorage
) -> None:
    orphan = new_key(uuid.uuid4())
    await storage.put(orphan, chunks_of(b"orphan"))
    named = await key_of(db, await upload(files, "named.txt"))
    job = RetentionJob(RetentionRepository(db), RetentionOptions(orphan_grace=0), storage)
    assert await job.run_once() == {}
    assert job.swept is not None and job.swept.deleted == 1
    assert await keys_of(storage) == {named}


async def test_local_leftovers_of_a_crashed_upload_are_swept(db: Database, tmp_path: Path) -> None:
    await TenantRepository(db).ensure("acme")
    storage = LocalStorage(tmp_path)
    key = new_key(uuid.uuid4())
    directory = tmp_path / key.rsplit("/", 1)[0]
    directory.mkdir(parents=True)
    leftover = directory / f".{key.rsplit('/', 1)[1]}.0badc0de.part"
    leftover.write_bytes(b"half")
    stranger = directory / "notes.txt"  # not a name the storage makes: never touched
    stranger.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    os.utime(stranger, (old, old))
    swept = await sweep_orphans(FileRepository(db), storage, grace=3600)
    assert (swept.seen, swept.deleted) == (1, 1)
    assert not leftover.exists() and stranger.exists()


async def test_s3_objects_the_storage_did_not_make_are_left(
    db: Database, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    storage = s3_storage(s3_server, bucket)
    client: Any = s3_server.client()
    elsewhere = "elsewhere/" + new_key(uuid.uuid4())
    for key in ("tenant-files/readme.txt", elsewhere):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    orphan = new_key(uuid.uuid4())
    await storage.put(orphan, chunks_of(b"orphan"))
    swept = await sweep_orphans(FileRepository(db), storage, grace=0)
    assert (swept.seen, swept.deleted) == (1, 1)
    assert set(s3_server.keys(bucket)) == {"tenant-files/readme.txt", elsewhere}


class _Refusing:
    """A storage whose deletes fail (a backend that is down)."""

    name = "local"

    def __init__(self, inner: LocalStorage) -> None:
        self.inner = inner

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        await self.inner.put(key, chunks)

    def get(self, key: str) -> AsyncIterator[bytes]:
        return self.inner.get(key)

    async def delete(self, key: str) -> None:
        raise StorageUnavailable("down")

    def stored(self) -> AsyncIterator[StoredObject]:
        return self.inner.stored()


async def test_bytes_retention_could_not_delete_are_swept_later(
    db: Database, tmp_path: Path
) -> None:
    await TenantRepository(db).ensure("acme")
    local = LocalStorage(tmp_path)
    down = _Refusing(local)
    files = FileService(FileRepository(db), down, FileSettings(), lambda: [b"k" * 32])
    task = await add_task(db, "acme", "DONE", age_days=40)
    key = await key_of(db, await upload(files, "a.txt", Owner(task_id=task)))
    job = RetentionJob(
        RetentionRepository(db), RetentionOptions(default_days=30, orphan_grace=0), down
    )
    removed = await job.run_once()
    assert removed is not None and removed["acme"].files == 1
    assert await keys_of(local) == {key}  # the row is gone, the bytes stayed
    assert job.swept is not None and job.swept.failed == 1
    # The storage is back: the next pass's sweep deletes them.
    job.storage = local
    await job.run_once()
    assert await keys_of(local) == set()
    # Bytes kept in another storage than this process's are left to that one's sweep.
    assert await forget_bytes(local, [("s3", key)]) == 1
