"""The console's notifications in real Chromium: a notification appears live (a toast, the
unread count in the header, the row on the page) when work is assigned, and is marked read
from the page."""

from __future__ import annotations

import pytest

from tests.console.conftest import Console, Stack

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow


async def test_a_notification_arrives_live_and_is_marked_read(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    await page.goto(signed_in_url)
    link = page.get_by_role("link", name="Notifications")
    await link.click()
    await page.get_by_role("searchbox", name="user").fill("bob@example.com")
    await page.get_by_role("searchbox", name="user").press("Enter")
    mine = page.locator("tbody tr", has_text="bob@example.com")  # others are for everyone
    await expect(page.locator("tbody tr").first).to_be_visible()
    await expect(mine).to_have_count(0)
    before = await page.locator("#unread").text_content()

    # Work is assigned to bob while the page is open: it arrives without a reload.
    async with stack.client() as client:
        started = await client.post(
            "/v1/processes",
            json={"proc_def_id": "purchase", "roles": {"requester": "bob@example.com"}},
        )
        assert started.status_code == 201, started.text
    # The open page adds the row as the notification commits (no reload, no polling).
    await expect(mine).to_have_count(1, timeout=20_000)
    row_id = await mine.get_attribute("data-id")
    row = page.locator(f"tbody tr[data-id='{row_id}']")
    await expect(row).to_have_class("unread")
    await expect(row).to_contain_text("work assigned")
    await expect(page.locator("#unread")).to_be_visible()
    assert await page.locator("#unread").text_content() != before
    await console.shot("notifications")

    await row.get_by_role("button", name="Mark read").click()
    await expect(row).to_have_class("read")
    await expect(row.get_by_role("button", name="Mark read")).to_have_count(0)
    # The row links to the work item.
    await row.locator("a").click()
    await expect(page.locator("#task-form")).to_be_visible()
