"""The console's memories page in real Chromium: an item taught from the page, a proposal
approved, and a search showing what a task of an agent would retrieve."""

from __future__ import annotations

import pytest

from tests.console.conftest import Console, Stack

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow


async def test_teach_approve_and_search_memories(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    async with stack.client() as client:
        proposal = await client.post(
            "/v1/memories",
            json={"content": "Invoices above 500 EUR need a second check.", "kind": "fact",
                  "scope": {"agent": "writer"}, "proposed": True},
        )  # fmt: skip
        assert proposal.status_code == 201, proposal.text
        proposal_id = proposal.json()["id"]
    page = console.page
    await page.goto(signed_in_url)
    await page.get_by_role("link", name="Memories").click()
    await page.locator("summary", has_text="Teach an item").click()
    await page.locator("textarea[name=content]").fill("Reports are always written as tables.")
    await page.locator("input[name=scope-agent]").fill("writer")
    await page.locator("input[name=pinned]").check()
    await page.get_by_role("button", name="Teach").click()
    row = page.locator("tbody tr", has_text="Reports are always written as tables.")
    await expect(row).to_contain_text("agent: writer")
    await expect(row.locator(".badge")).to_have_text("ACTIVE")

    await page.get_by_role("combobox", name="status").select_option("proposed")
    pending = page.locator(f"tr[data-id='{proposal_id}']")
    await expect(pending.locator(".badge")).to_have_text("PROPOSED")
    await console.shot("memories-proposal")
    await pending.get_by_role("button", name="Approve").click()
    await expect(pending).to_have_count(0)  # no longer proposed
    async with stack.client() as client:
        approved = await client.get(f"/v1/memories/{proposal_id}")
        assert approved.json()["status"] == "active"

    await page.get_by_role("searchbox", name="agent").fill("writer")
    await page.get_by_role("searchbox", name="search memories").fill("table format for reports")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("ol.timeline li").first).to_contain_text(
        "Reports are always written as tables."
    )
    await console.shot("memories")
