"""Documents over :class:`~processgpt.client.ProcessGPTClient`, against a real API process."""

from __future__ import annotations

import uuid

import pytest

from processgpt.client import ApiError
from tests.api import conftest as api_fixtures
from tests.api.conftest import Api
from tests.client.test_http_client import client

api = api_fixtures.api  # the real API + workers fixture of tests/api


async def test_documents_over_the_client(api: Api) -> None:
    async with client(api) as pg:
        task = await pg.create_task("demo", "a step")
        uploaded = await pg.upload_file(b"a,b\n1,2\n", name="t.csv", task_id=task.id)
        saved = await pg.save_document(
            "Totals", "a,b\n1,2\n", task_id=task.id, file_id=uploaded.id, metadata={"k": 1}
        )
        assert saved.todo_id == task.id and saved.file is not None
        assert saved.file.name == "t.csv" and saved.metadata == {"k": 1}
        page = await pg.list_documents(task_id=task.id)
        assert [d.id for d in page.items] == [saved.id] and page.items[0].excerpt == "a,b\n1,2\n"
        assert (await pg.get_document(saved.id)).content == "a,b\n1,2\n"
        with pytest.raises(ApiError) as refused:
            await pg.save_document("x", task_id=uuid.uuid4())
        assert refused.value.code == "task_not_found"
        await pg.delete_document(saved.id)
        with pytest.raises(ApiError) as gone:
            await pg.get_document(saved.id)
        assert gone.value.code == "document_not_found"
