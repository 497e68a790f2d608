"""The storage backends: the local filesystem and a real S3-compatible server (moto's)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from processgpt.domain.errors import FileTooLarge, StorageUnavailable
from processgpt.files.s3 import S3Storage
from processgpt.files.storage import FileStorage, LocalStorage, check_key, new_key
from tests.s3_server import ACCESS, REGION, S3Server

MiB = 1024 * 1024


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def failing_after(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunks_of(data):
        yield chunk
    raise FileTooLarge("over the limit")


async def read_all(storage: FileStorage, key: str) -> bytes:
    return b"".join([c async for c in storage.get(key)])


def s3_storage(s3: S3Server, bucket: str) -> S3Storage:
    return S3Storage(
        bucket,
        prefix="tenant-files",
        endpoint_url=s3.endpoint,
        region=REGION,
        access_key_id=ACCESS["aws_access_key_id"],
        secret_access_key=ACCESS["aws_secret_access_key"],
        part_bytes=5 * MiB,
    )


def test_keys_are_ours() -> None:
    file_id = uuid.uuid4()
    key = new_key(file_id)
    assert check_key(key) == key and key.endswith(file_id.hex)
    for bad in ["../x", "ab/cd/../../etc", "/abs", "ab/cd/" + "g" * 32, ""]:
        with pytest.raises(ValueError):
            check_key(bad)


async def test_local_round_trip_and_nothing_left_on_failure(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    data = os.urandom(3 * MiB + 17)
    key = new_key(uuid.uuid4())
    await storage.put(key, chunks_of(data))
    assert await read_all(storage, key) == data
    assert (tmp_path / key).stat().st_mode & 0o777 == 0o600

    failed = new_key(uuid.uuid4())
    with pytest.raises(FileTooLarge):
        await storage.put(failed, failing_after(data))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [Path(key).name]
    with pytest.raises(StorageUnavailable):
        await read_all(storage, failed)
    await storage.delete(key)
    await storage.delete(key)  # deleting twice is fine
    assert not (tmp_path / key).exists()


async def test_s3_round_trip_single_and_multipart(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    storage = s3_storage(s3_server, bucket)
    small = b"small file"
    large = os.urandom(11 * MiB + 5)  # three parts of 5 MiB, 5 MiB and the rest
    small_key, large_key = new_key(uuid.uuid4()), new_key(uuid.uuid4())
    await storage.put(small_key, chunks_of(small))
    await storage.put(large_key, chunks_of(large))
    assert await read_all(storage, small_key) == small
    got = await read_all(storage, large_key)
    assert hashlib.sha256(got).digest() == hashlib.sha256(large).digest()
    assert sorted(s3_server.keys(bucket)) == sorted(
        [f"tenant-files/{small_key}", f"tenant-files/{large_key}"]
    )
    await storage.delete(large_key)
    assert s3_server.keys(bucket) == [f"tenant-files/{small_key}"]


async def test_s3_failed_upload_leaves_nothing(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    storage = s3_storage(s3_server, bucket)
    key = new_key(uuid.uuid4())
    with pytest.raises(FileTooLarge):
        await storage.put(key, failing_after(os.urandom(6 * MiB)))  # one part sent, then fails
    assert s3_server.keys(bucket) == []
    assert s3_server.uploads(bucket) == []  # the multipart upload was aborted
    with pytest.raises(StorageUnavailable):
        await read_all(storage, key)
    missing = S3Storage(
        "no-such-bucket",
        endpoint_url=s3_server.endpoint,
        region=REGION,
        **{
            "access_key_id": ACCESS["aws_access_key_id"],
            "secret_access_key": ACCESS["aws_secret_access_key"],
        },
    )
    with pytest.raises(StorageUnavailable):
        await missing.put(key, chunks_of(b"x"))
