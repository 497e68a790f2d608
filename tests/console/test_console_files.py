"""A task's files in real Chromium: the file an agent sent shows as a card in its timeline
and in the task's file list, an attachment uploaded from the page joins the list, and both
download through signed short-lived links (the API key never lands in a URL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.conftest import Console, Stack
from tests.console.test_console_tasks import submit

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow

REPORT = "Quarterly figures: all green.\n"


async def test_files_sent_by_the_agent_and_attached_in_the_page(
    console: Console, signed_in_url: str, stack: Stack, tmp_path: Path
) -> None:
    page = console.page
    task_id = await submit(
        stack,
        "write the report",
        steps=1,
        delay=0,
        send_file={"name": "report.txt", "text": REPORT},
    )
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/tasks/{task_id}")
    await expect(page.locator("#task-status")).to_have_text("DONE")

    # The agent's SEND_FILE is a card in the timeline: name, type and size, and a download.
    card = page.locator(".timeline li.file .file-card")
    await expect(card.locator(".file-name")).to_have_text("report.txt")
    await expect(card).to_contain_text("text/plain")
    await expect(card).to_contain_text(f"{len(REPORT)} B")
    files = page.locator("#task-files tbody tr[data-file]")
    await expect(files).to_have_count(1)
    await expect(files.first).to_contain_text("sent by agent demo")
    await console.shot("task-files")

    async with page.expect_download() as caught:
        await card.get_by_role("button", name="Download").click()
    download = await caught.value
    assert download.suggested_filename == "report.txt"
    assert "signature=" in download.url and stack.key not in download.url
    assert Path(await download.path()).read_text() == REPORT

    # An attachment uploaded from the page joins the list and downloads the same way.
    notes = tmp_path / "notes.txt"
    notes.write_text("bring the receipts\n")
    await page.locator("#task-files input[type=file]").set_input_files(str(notes))
    await page.locator("#task-files").get_by_role("button", name="Attach").click()
    await expect(page.locator(".toast", has_text="Attached notes.txt")).to_be_visible()
    await expect(files).to_have_count(2)
    uploaded = files.filter(has_text="notes.txt")
    await expect(uploaded).to_contain_text("uploaded")
    async with page.expect_download() as caught:
        await uploaded.get_by_role("button", name="Download").click()
    download = await caught.value
    assert download.suggested_filename == "notes.txt"
    assert Path(await download.path()).read_text() == "bring the receipts\n"
    assert stack.key not in page.url

    async with stack.client() as client:
        listed = await client.get("/v1/files", params={"task_id": task_id})
        assert listed.status_code == 200, listed.text
        assert sorted(f["name"] for f in listed.json()["items"]) == ["notes.txt", "report.txt"]


async def test_attach_without_a_file_says_so(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    task_id = await submit(stack, "nothing attached", steps=0)
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/tasks/{task_id}")
    await expect(page.locator("#task-files")).to_contain_text("No files yet.")
    await page.locator("#task-files").get_by_role("button", name="Attach").click()
    await expect(page.locator("#task-files .error")).to_have_text("choose a file to attach first")
