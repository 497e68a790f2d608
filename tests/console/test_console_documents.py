"""Documents in real Chromium: the document an agent's step stored shows on its task (in the
timeline and as a card with its text and its file), and one stored for a process instance
through the API shows on the instance, its whole text read when opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.conftest import Console, Stack
from tests.console.test_console_processes import REQUESTER
from tests.console.test_console_tasks import submit

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow

QUOTE = "Supplier quote: 3 boxes at 12 EUR, delivered Friday.\n"


async def test_a_steps_document_on_its_task(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    sent = {"name": "quote.txt", "text": QUOTE, "document_title": "Supplier quote"}
    task_id = await submit(stack, "get a quote", steps=0, send_file=sent)
    page = console.page
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/tasks/{task_id}")
    await expect(page.locator("#task-status")).to_have_text("DONE")
    await expect(page.locator(".timeline")).to_contain_text("stored a document Supplier quote")
    doc = page.locator("#documents .doc")
    await expect(doc).to_have_count(1)
    await expect(doc.locator(".doc-title")).to_have_text("Supplier quote")
    await expect(doc).to_contain_text("stored by agent demo")
    await expect(doc.locator(".doc-text")).to_have_text(QUOTE.strip())
    await console.shot("task-document")
    async with page.expect_download() as caught:
        await doc.get_by_role("button", name="Download quote.txt").click()
    download = await caught.value
    assert Path(await download.path()).read_text() == QUOTE


async def test_an_instances_document_read_whole(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    long_text = "Minutes of the review. " + "Every line was checked. " * 30 + "THE END"
    async with stack.client() as client:
        started = await client.post(
            "/v1/processes", json={"proc_def_id": "purchase", "roles": {"requester": REQUESTER}}
        )
        assert started.status_code == 201, started.text
        inst = started.json()["id"]
        stored = await client.post(
            "/v1/documents",
            json={"proc_inst_id": inst, "title": "Review minutes", "content": long_text},
        )
        assert stored.status_code == 201, stored.text
    page = console.page
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/processes/{inst}")
    doc = page.locator("#documents .doc")
    await expect(doc.locator(".doc-title")).to_have_text("Review minutes")
    await expect(doc.locator(".doc-text")).not_to_contain_text("THE END")  # an excerpt
    await doc.locator("summary").click()
    await expect(doc.locator(".doc-text")).to_contain_text("THE END")
    await console.shot("process-document")
