"""``/v1/files`` against a real ``processgpt api`` process, with the bytes on the local
filesystem and in a real S3-compatible server (moto's, over HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import start_api
from tests.api.test_tasks_api import error_code
from tests.s3_server import S3Server
from tests.support import StartProcess

MAX_BYTES = 300_000
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@dataclass
class FilesApi:
    url: str
    key_a: str  # tenant "acme"
    key_b: str  # tenant "globex"
    backend: str
    stored: object  # () -> list of stored objects' names

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.key_a}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    def stored_objects(self) -> list[str]:
        return self.stored()  # type: ignore[operator,no-any-return]


@pytest.fixture(params=["local", "s3"])
async def files_api(
    request: pytest.FixtureRequest,
    db: Database,
    start_process: StartProcess,
    tmp_path: Path,
) -> AsyncIterator[FilesApi]:
    keys = ApiKeyRepository(db)
    key_a = (await keys.create("acme", role=Role.MEMBER)).key
    key_b = (await keys.create("globex", role=Role.ADMIN)).key
    env = {"PROCESSGPT_FILES_MAX_BYTES": str(MAX_BYTES)}
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        bucket = s3.new_bucket()
        env |= s3.env(bucket)

        def stored() -> list[str]:
            return s3.keys(bucket)
    else:
        root = tmp_path / "files"
        env["PROCESSGPT_FILES_DIR"] = str(root)

        def stored() -> list[str]:
            return sorted(
                str(Path(d, f).relative_to(root)) for d, _, fs in os.walk(root) for f in fs
            )

    _server, url = await start_api(start_process, env)
    yield FilesApi(url, key_a, key_b, request.param, stored)


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    name: str = "report.txt",
    content_type: str | None = "text/plain",
    **params: str,
) -> httpx.Response:
    part = (name, data, content_type) if content_type else (name, data)
    return await client.post("/v1/files", files={"file": part}, params=params)


async def test_upload_download_round_trip(files_api: FilesApi) -> None:
    text = "quarterly numbers: 42\nnaïve café ✓\n".encode() * 200
    async with files_api.client() as client:
        created = await upload(client, text, name="../../etc/Quarterly report ✓.txt")
        assert created.status_code == 201, created.text
        info = created.json()
        # The name is shown as given, without its path; the storage key is ours.
        assert info["name"] == "Quarterly report ✓.txt"
        assert info["content_type"] == "text/plain"
        assert info["size"] == len(text)
        assert info["sha256"] == hashlib.sha256(text).hexdigest()
        assert info["tenant_id"] == "acme" and info["created_by"].startswith("key:")
        assert "storage_key" not in info and "storage" not in info
        assert len(files_api.stored_objects()) == 1
        assert "etc" not in files_api.stored_objects()[0]

        assert (await client.get(f"/v1/files/{info['id']}")).json() == info
        got = await client.get(f"/v1/files/{info['id']}/content")
        assert got.status_code == 200
        assert got.content == text
        assert got.headers["content-type"].startswith("text/plain")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith("attachment;")
        assert "Quarterly%20report%20%E2%9C%93.txt" in got.headers["content-disposition"]
        assert "sandbox" in got.headers["content-security-policy"]

        png = await upload(client, PNG, name="chart.png", content_type="image/png")
        assert png.status_code == 201, png.text
        got_png = await client.get(f"/v1/files/{png.json()['id']}/content")
        assert got_png.content == PNG and got_png.headers["content-type"] == "image/png"

        listed = (await client.get("/v1/files")).json()
        assert [f["id"] for f in listed["items"]] == [png.json()["id"], info["id"]]
        page = (await client.get("/v1/files", params={"limit": 1})).json()
        assert len(page["items"]) == 1 and page["next_cursor"]
        rest = (await client.get("/v1/files", params={"cursor": page["next_cursor"]})).json()
        assert [f["id"] for f in rest["items"]] == [info["id"]]

        assert (await client.delete(f"/v1/files/{info['id']}")).status_code == 204
        gone = await client.get(f"/v1/files/{info['id']}/content")
        assert gone.status_code == 404 and error_code(gone) == "file_not_found"
        assert len(files_api.stored_objects()) == 1  # the PNG's bytes only


async def test_a_large_file_streams_through(files_api: FilesApi) -> None:
    """A file near the limit, sent chunked (no Content-Length), arrives whole."""
    data = os.urandom(MAX_BYTES - 10)

    async def body() -> AsyncIterator[bytes]:
        boundary = b"----pgpt-test"
        yield b"--" + boundary + b"\r\n"
        yield b'Content-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
        yield b"Content-Type: application/octet-stream\r\n\r\n"
        for i in range(0, len(data), 7000):
            yield data[i : i + 7000]
        yield b"\r\n--" + boundary + b"--\r\n"

    async with files_api.client() as client:
        refused = await client.post(
            "/v1/files",
            content=body(),
            headers={"content-type": "multipart/form-data; boundary=----pgpt-test"},
        )
        # application/octet-stream is not an accepted type by default.
        assert refused.status_code == 415 and error_code(refused) == "unsupported_media_type"
        zipped = b"PK\x03\x04" + data[4:]
        data = zipped

        created = await client.post(
            "/v1/files",
            content=body(),
            headers={"content-type": "multipart/form-data; boundary=----pgpt-test"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["content_type"] == "application/zip"  # sniffed
        got = await client.get(f"/v1/files/{created.json()['id']}/content")
        assert got.content == zipped


async def test_size_limit_is_413_and_stores_nothing(files_api: FilesApi) -> None:
    async with files_api.client() as client:
        over = await upload(client, b"a" * (MAX_BYTES + 1))
        assert over.status_code == 413 and error_code(over) == "file_too_large"

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while read
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.txt"\r\n'
            yield b"Content-Type: text/plain\r\n\r\n"
            for _ in range(MAX_BYTES // 10_000 + 2):
                yield b"b" * 10_000
            yield b"\r\n--b--\r\n"

        streamed = await client.post(
            "/v1/files",
            content=chunked(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413 and error_code(streamed) == "file_too_large"
        assert (await client.get("/v1/files")).json()["items"] == []
        assert files_api.stored_objects() == []


async def test_content_types_are_checked_not_trusted(files_api: FilesApi) -> None:
    async with files_api.client() as client:
        cases = [
            (b"just text", "fake.png", "image/png"),  # bytes contradict the type
            (b"<html><script>alert(1)</script></html>", "page.txt", "text/plain"),  # HTML
            (b"<!doctype html><p>hi</p>", "page.html", "text/html"),  # not an allowed type
            (b"\x00\x01\x02binary", "x.bin", None),  # unknown binary, nothing declared
            (PNG, "image.pdf", "application/pdf"),
        ]
        for data, name, declared in cases:
            answer = await upload(client, data, name=name, content_type=declared)
            assert answer.status_code == 415, (name, answer.text)
            assert error_code(answer) == "unsupported_media_type"
        # Nothing declared: the name and the bytes decide.
        csv = await upload(client, b"a,b\n1,2\n", name="t.csv", content_type=None)
        assert csv.status_code == 201 and csv.json()["content_type"] == "text/csv"
        # A generic declaration with a misleading extension: the bytes decide.
        png = await upload(client, PNG, name="notes.txt", content_type="application/octet-stream")
        assert png.status_code == 201 and png.json()["content_type"] == "image/png"
        bad = [
            await client.post("/v1/files", content=b"x", headers={"content-type": "text/plain"}),
            await client.post("/v1/files", files={"other": ("a.txt", b"x", "text/plain")}),
            await client.post(
                "/v1/files",
                content=b"--b\r\nnot a part",
                headers={"content-type": "multipart/form-data; boundary=b"},
            ),
        ]
        for answer in bad:
            assert answer.status_code == 422 and error_code(answer) == "invalid_input", answer.text
        assert len(files_api.stored_objects()) == 2


async def test_other_tenants_files_are_not_found(files_api: FilesApi) -> None:
    async with files_api.client() as a, files_api.client(files_api.key_b) as b:
        file_id = (await upload(a, b"secret plans")).json()["id"]
        for answer in [
            await b.get(f"/v1/files/{file_id}"),
            await b.get(f"/v1/files/{file_id}/content"),
            await b.post(f"/v1/files/{file_id}/link"),
            await b.delete(f"/v1/files/{file_id}"),
        ]:
            assert answer.status_code == 404 and error_code(answer) == "file_not_found"
        assert (await b.get("/v1/files")).json()["items"] == []
        assert (await a.get(f"/v1/files/{file_id}/content")).content == b"secret plans"
        async with httpx.AsyncClient(base_url=files_api.url) as anonymous:
            refused = await anonymous.get(f"/v1/files/{file_id}/content")
            assert refused.status_code == 401 and error_code(refused) == "unauthorized"
            assert (await anonymous.post("/v1/files", files={"file": b"x"})).status_code == 401
        # Owner references must be the tenant's own.
        task = await b.post("/v1/tasks", json={"agent_orch": "demo", "query": "x"})
        assert task.status_code == 201
        foreign = await upload(a, b"x", task_id=task.json()["id"])
        assert foreign.status_code == 422 and error_code(foreign) == "invalid_input"
        mine = await upload(b, b"notes", task_id=task.json()["id"])
        assert mine.status_code == 201
        by_task = (await b.get("/v1/files", params={"task_id": task.json()["id"]})).json()
        assert [f["id"] for f in by_task["items"]] == [mine.json()["id"]]


async def test_signed_links(files_api: FilesApi) -> None:
    async with files_api.client() as client, httpx.AsyncClient() as anonymous:
        file_id = (await upload(client, b"for the customer")).json()["id"]
        link = (await client.post(f"/v1/files/{file_id}/link")).json()
        assert link["url"].startswith(files_api.url)
        got = await anonymous.get(link["url"])  # no API key
        assert got.status_code == 200 and got.content == b"for the customer"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith("attachment;")

        parts = urlsplit(link["url"])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"

        def with_query(**changes: str) -> str:
            return f"{base}?{urlencode({**query, **changes})}"

        signature = query["signature"]
        tampered = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        for url in [
            with_query(signature=tampered),
            with_query(expires=str(int(query["expires"]) + 3600)),  # a longer life
            f"{files_api.url}/v1/files/{uuid.uuid4()}/content?{parts.query}",  # another file
        ]:
            refused = await anonymous.get(url)
            assert refused.status_code == 403 and error_code(refused) == "link_invalid", url
        half = await anonymous.get(f"{base}?signature={signature}")
        assert half.status_code == 422

        # (a valid link's answer is checked above: fetching this one before it expires would
        # race its one second on a loaded machine)
        short = (await client.post(f"/v1/files/{file_id}/link", json={"seconds": 1})).json()
        await asyncio.sleep(max(0.0, short["expires_at"] - __import__("time").time()) + 0.2)
        expired = await anonymous.get(short["url"])
        assert expired.status_code == 403 and error_code(expired) == "link_expired"

        assert (await client.delete(f"/v1/files/{file_id}")).status_code == 204
        deleted = await anonymous.get(link["url"])
        assert deleted.status_code == 403 and error_code(deleted) == "link_invalid"
