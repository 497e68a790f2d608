"""The console's tasks pages in real Chromium: sign-in from the printed link (the key leaves
the URL), a task followed live, cancel, an input request answered in the page, actions only
where the state allows them, search, paging, a URL per task, dead letters re-queued, and the
narrow layout."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.conftest import Console, Stack

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow


async def submit(
    stack: Stack, query: str, max_attempts: int = 3, agent: str = "demo", **input: Any
) -> str:
    async with stack.client() as client:
        response = await client.post(
            "/v1/tasks",
            json={
                "agent_orch": agent,
                "query": query,
                "input": input,
                "max_attempts": max_attempts,
            },
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


async def events_of(stack: Stack, task_id: str) -> list[str]:
    async with stack.client() as client:
        response = await client.get(f"/v1/tasks/{task_id}/events")
        assert response.status_code == 200, response.text
        return [e["event_type"] for e in response.json()["items"]]


async def test_sign_in_follow_and_cancel_a_task(console: Console, signed_in_url: str) -> None:
    page = console.page
    await page.goto(signed_in_url)
    await expect(page.locator("#nav")).to_be_visible()
    await expect(page.locator("#signin")).to_be_hidden()
    # The key is read once and leaves the address bar; it lives in this tab's storage.
    assert "key=" not in page.url
    assert await page.evaluate("sessionStorage.getItem('processgpt.key')") is not None
    assert await page.evaluate("localStorage.getItem('processgpt.key')") is None
    header = await page.locator("header.top").bounding_box()
    assert header is not None and header["height"] <= 60  # not a third of the window

    # Submit a slow task from the page: its URL, its live state, then cancel it.
    await page.locator("details.card summary").click()
    await page.locator("textarea[name=input]").fill('{"steps": 200, "delay": 0.2}')
    await page.locator("textarea[name=query]").fill("a long running job")
    await page.get_by_role("button", name="Submit task").click()
    await expect(page).to_have_url(re.compile(r"#/tasks/[0-9a-f-]{36}$"))
    task_id = page.url.rsplit("/", 1)[1]
    status = page.locator("#task-status")
    await expect(status).to_have_text("IN_PROGRESS")
    await expect(page.locator(".timeline li.progress").first).to_be_visible()
    await expect(page.get_by_role("button", name="Re-queue")).to_have_count(0)
    await console.shot("task-running")
    await page.get_by_role("button", name="Cancel").click()
    await expect(status).to_have_text("CANCELLED")
    await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    await expect(page.get_by_role("button", name="Re-queue")).to_be_visible()
    # The list shows the same state (live), and the row links to the task.
    row = page.locator(f"tr.row[data-id='{task_id}']")
    await expect(row.locator(".badge")).to_have_text("CANCELLED")

    # A reload keeps the key (sessionStorage) and opens the same task from its URL.
    await page.reload()
    await expect(page.locator("#task-status")).to_have_text("CANCELLED")


async def test_answer_an_input_request_in_the_page(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    task_id = await submit(stack, "plan the trip", steps=1, delay=0, ask="Which city?")
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/tasks/{task_id}")
    status = page.locator("#task-status")
    await expect(status).to_have_text("INPUT_REQUIRED")
    panel = page.locator("#question")
    await expect(panel.locator(".question")).to_have_text("Which city?")
    await expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    await console.shot("task-question")
    await panel.locator("input[name=answer]").fill("Berlin")
    await panel.get_by_role("button", name="Answer").click()
    await expect(status).to_have_text("DONE", timeout=20_000)
    await expect(page.locator("#question")).to_have_count(0)
    await expect(page.locator(".timeline")).to_contain_text("Berlin")
    await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    await console.shot("task-answered")

    # Answering again is not offered; the API's refusal would show inline, not as an alert.
    async with stack.client() as client:
        again = await client.post(f"/v1/tasks/{task_id}/input", json={"answer": "Paris"})
        assert again.status_code == 409


async def test_the_timeline_shows_text_as_text_and_tool_calls_collapsed(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    task_id = await submit(stack, "find the invoices", agent="streaming")
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/tasks/{task_id}")
    await expect(page.locator("#task-status")).to_have_text("DONE")
    texts = page.locator(".timeline li.text .text-body")
    await expect(texts.first).to_have_text("Let me look that up.")
    await expect(texts.nth(1)).to_have_text("Found 3 results.")
    tool = page.locator(".timeline li.tool details")
    await expect(tool.locator("summary")).to_have_text("tool search")
    assert await tool.get_attribute("open") is None  # collapsed until asked
    await tool.locator("summary").click()
    await expect(tool).to_contain_text('"q": "find the invoices"')
    await expect(tool).to_contain_text('"hits": 3')
    await console.shot("task-timeline")


async def test_search_paging_and_switching_tasks(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    for i in range(27):
        await submit(stack, f"bulk job {i}", steps=0)
    await page.goto(signed_in_url)
    rows = page.locator("table.rows tbody tr.row")
    await expect(rows).to_have_count(25)
    older = page.get_by_role("button", name="Older →")
    await expect(older).to_be_enabled()
    await older.click()
    await expect(page.locator(".pager .muted")).to_have_text("page 2")
    await expect(page.get_by_role("button", name="← Newer")).to_be_enabled()

    await page.get_by_role("searchbox", name="search").fill("bulk job 1")
    await expect(rows).to_have_count(11)  # 1, 10..19
    await expect(page.locator(".pager .muted")).to_have_text("page 1")
    await console.shot("tasks-search")

    # Switching tasks quickly aborts the earlier streams without an error on the page.
    for i in range(5):
        await rows.nth(i).click()
    await expect(page).to_have_url(re.compile(r"#/tasks/[0-9a-f-]{36}$"))
    await expect(page.locator("#task-status")).to_have_text("DONE")


async def test_dead_letters_are_requeued(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    failed = await submit(stack, "doomed job", max_attempts=1, steps=0, fail_attempts=1)
    await page.goto(signed_in_url)
    await page.get_by_role("link", name="Dead letters").click()
    row = page.locator(f"tr[data-id='{failed}']")
    await expect(row).to_contain_text("fail_attempts", timeout=20_000)
    await console.shot("dead-letters")
    await row.get_by_role("button", name="Re-queue").click()
    await expect(page.locator(".toast", has_text="queued again")).to_be_visible()
    assert "task_requeued" in await events_of(stack, failed)


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 800}])
async def test_narrow_screen_shows_one_pane_at_a_time(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    task_id = await submit(stack, "on a phone", steps=1, delay=0)
    await page.goto(signed_in_url)
    await expect(page.locator(f"tr.row[data-id='{task_id}']")).to_be_visible()
    await page.locator(f"tr.row[data-id='{task_id}']").click()
    status = page.locator("#task-status")
    await expect(status).to_have_text("DONE")
    box = await status.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390  # on screen
    await expect(page.locator("section.list")).to_be_hidden()
    await console.shot("narrow-task")
    await page.get_by_role("link", name="← back to the list").click()
    await expect(page.locator("section.list")).to_be_visible()
    await page.get_by_role("button", name="menu").click()
    await expect(page.get_by_role("link", name="Worklist")).to_be_visible()


async def test_sign_in_with_a_pasted_key(console: Console, stack: Stack) -> None:
    page = console.page
    await page.goto(f"{stack.url}/console")
    form = page.locator("#signin")
    await expect(form).to_be_visible()
    await expect(page.locator("#nav")).to_be_hidden()
    await page.locator("#keyinput").fill("pgpt_not_a_key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#keyerror")).not_to_be_empty()
    await expect(form).to_be_visible()
    await page.locator("#keyinput").fill(stack.key)
    await page.locator("#remember").check()
    await page.get_by_role("button", name="Sign in").click()
    await expect(form).to_be_hidden()
    await expect(page.locator("#nav")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('processgpt.key')") == stack.key
    await page.get_by_role("button", name="Forget key").click()
    await expect(form).to_be_visible()
    assert await page.evaluate("localStorage.getItem('processgpt.key')") is None


async def test_a_task_no_worker_serves_shows_its_warning(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    async with stack.client() as client:
        response = await client.post(
            "/v1/tasks", json={"agent_orch": "llm", "query": "nobody runs me"}
        )
        assert response.status_code == 201, response.text
        task = response.json()
        assert task["warnings"], task  # the stack runs no llm worker
    page = console.page
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/tasks/{task['id']}")
    await expect(page.locator("#task-status")).to_have_text("PENDING")
    await expect(page.locator("#task-warnings")).to_contain_text("no live worker serves agent")
    await page.get_by_role("button", name="Cancel").click()  # tidy: nothing will run it
    await expect(page.locator("#task-status")).to_have_text("CANCELLED")
