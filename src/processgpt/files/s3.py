"""Files' bytes in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, …) through ``boto3``.

boto3 blocks, so every call runs in a thread. Uploads stream: a file that fits in one part
is sent with one ``PutObject``; a larger one as a multipart upload of :data:`PART_BYTES`
parts (at most one part is held in memory), aborted when anything fails, so nothing half
written stays in the bucket. Downloads read the object's body a chunk at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from processgpt.domain.errors import StorageUnavailable
from processgpt.files.storage import CHUNK_BYTES, StoredObject, check_key

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024
"""Size of a multipart upload's parts (S3's minimum is 5 MiB for all but the last)."""


class S3Storage:
    """A bucket (and an optional key prefix) of an S3-compatible service."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        import boto3  # noqa: PLC0415 - only deployments that store files in S3 load it
        from botocore.config import Config  # noqa: PLC0415

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_bytes = part_bytes
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return await asyncio.to_thread(getattr(self._client, method), **kwargs)
        except (BotoCoreError, ClientError) as exc:
            code = (
                exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
            )
            # The error's class and code only: its text may hold the endpoint's URL.
            log.error(
                "S3 call failed call=%s bucket=%s error=%s code=%s",
                method,
                self.bucket,
                type(exc).__name__,
                code,
            )
            raise StorageUnavailable(f"the file storage failed while {what}") from None

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        name = self._key(key)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= self.part_bytes:
                    if upload_id is None:
                        created = await self._call(
                            "writing", "create_multipart_upload", Bucket=self.bucket, Key=name
                        )
                        upload_id = str(created["UploadId"])
                    await self._part(name, upload_id, parts, bytes(buffer))
                    buffer.clear()
            if upload_id is None:
                await self._call(
                    "writing", "put_object", Bucket=self.bucket, Key=name, Body=bytes(buffer)
                )
                return
            if buffer:
                await self._part(name, upload_id, parts, bytes(buffer))
            await self._call(
                "writing",
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if upload_id is not None:
                try:
                    await self._call(
                        "cleaning up",
                        "abort_multipart_upload",
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                    )
                except StorageUnavailable:
                    log.error("S3 multipart upload not aborted bucket=%s", self.bucket)
            raise

    async def _part(
        self, name: str, upload_id: str, parts: list[dict[str, Any]], body: bytes
    ) -> None:
        number = len(parts) + 1
        answer = await self._call(
            "writing",
            "upload_part",
            Bucket=self.bucket,
            Key=name,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        parts.append({"ETag": answer["ETag"], "PartNumber": number})

    async def get(self, key: str) -> AsyncIterator[bytes]:
        answer = await self._call("reading", "get_object", Bucket=self.bucket, Key=self._key(key))
        body = answer["Body"]
        try:
            while True:
                try:
                    chunk = await asyncio.to_thread(body.read, CHUNK_BYTES)
                except Exception as exc:  # noqa: BLE001 - urllib3/botocore read errors vary
                    log.error("S3 read failed bucket=%s error=%s", self.bucket, type(exc).__name__)
                    raise StorageUnavailable("the file storage failed while reading") from None
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self._call("deleting", "delete_object", Bucket=self.bucket, Key=self._key(key))

    async def stored(self) -> AsyncIterator[StoredObject]:
        token: str | None = None
        while True:
            page = await self._call(
                "listing",
                "list_objects_v2",
                Bucket=self.bucket,
                Prefix=self.prefix,
                **({"ContinuationToken": token} if token else {}),
            )
            for item in page.get("Contents", []):
                key = str(item["Key"])[len(self.prefix) :]
                try:
                    check_key(key)
                except ValueError:
                    continue  # not an object this storage made: never touched
                yield StoredObject(key, item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]
