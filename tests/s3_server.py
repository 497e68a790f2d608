"""A real S3-compatible server (moto's, as an HTTP server on 127.0.0.1) for storage tests;
the ``s3_server`` fixture (tests/conftest.py) starts one per test session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import boto3

REGION = "us-east-1"
ACCESS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def env(self, bucket: str) -> dict[str, str]:
        """What an API or worker process needs to keep files in ``bucket``."""
        return {
            "PROCESSGPT_FILES_STORAGE": "s3",
            "PROCESSGPT_FILES_S3_BUCKET": bucket,
            "PROCESSGPT_FILES_S3_ENDPOINT_URL": self.endpoint,
            "PROCESSGPT_FILES_S3_REGION": REGION,
            "PROCESSGPT_FILES_S3_ACCESS_KEY_ID": ACCESS["aws_access_key_id"],
            "PROCESSGPT_FILES_S3_SECRET_ACCESS_KEY": ACCESS["aws_secret_access_key"],
        }

    def client(self) -> object:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, **ACCESS)

    def new_bucket(self) -> str:
        name = f"files-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
        return [o["Key"] for o in listed.get("Contents", [])]

    def uploads(self, bucket: str) -> list[str]:
        listed = self.client().list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
        return [u["Key"] for u in listed.get("Uploads", [])]
