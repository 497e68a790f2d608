"""Every page of the console as a new user walks through it, at desktop width and on a
phone (390 px): each renders without an error on the page, nothing runs off the right edge
(no sideways scrolling), and a screenshot of each is kept (``PROCESSGPT_CONSOLE_SHOTS``)."""

from __future__ import annotations

import pytest

from tests.console.conftest import Console, Stack
from tests.console.test_console_processes import REQUESTER
from tests.console.test_console_tasks import submit

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow

OVERFLOWING = """() => [document.documentElement, ...document.querySelectorAll(".pane")]
  .filter((el) => el.offsetParent !== null || el === document.documentElement)
  .filter((el) => el.scrollWidth > el.clientWidth + 1)
  .map((el) => `${el.className || el.tagName}: ${el.scrollWidth} px in ${el.clientWidth}`)"""
"""The page and its visible panes whose content is wider than they are (a diagram scrolls
inside its own box; nothing else should need sideways scrolling)."""


async def fits(console: Console, what: str) -> None:
    assert await console.page.evaluate(OVERFLOWING) == [], what


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1280, "height": 800}, {"width": 390, "height": 800}],
    ids=["wide", "phone"],
)
async def test_walk_through_every_page(
    console: Console, signed_in_url: str, stack: Stack, viewport: dict[str, int]
) -> None:
    tag = "wide" if viewport["width"] > 800 else "phone"
    asked = await submit(stack, "plan the offsite", steps=1, delay=0, ask="Which city?")
    sent = await submit(
        stack,
        "write the summary",
        steps=1,
        delay=0,
        send_file={"name": "summary.md", "text": "# ok"},
    )
    await submit(stack, "a job that fails", max_attempts=1, steps=0, fail_attempts=1)
    async with stack.client() as client:
        started = await client.post(
            "/v1/processes", json={"proc_def_id": "purchase", "roles": {"requester": REQUESTER}}
        )
        assert started.status_code == 201, started.text
        inst = started.json()
        proposal = await client.post(  # a proposal: its row has the most actions
            "/v1/memories",
            json={"content": "Offsites are booked at least six weeks ahead of the date.",
                  "kind": "fact", "scope": {"agent": "planner"}, "proposed": True},
        )  # fmt: skip
        assert proposal.status_code in (200, 201), proposal.text  # 200: the same one again
    (todo,) = [t["id"] for t in inst["open_tasks"] if t["status"] == "TODO"]
    page = console.page
    await page.goto(signed_in_url)
    narrow = tag == "phone"

    async def visit(hash_: str, name: str, ready: str) -> None:
        await page.goto(f"{stack.url}/console#/{hash_}")
        await expect(page.locator(ready).first).to_be_visible()
        await fits(console, name)
        await console.shot(f"walk-{tag}-{name}")

    await visit("tasks", "tasks", "table.rows tr.row")
    await visit(f"tasks/{asked}", "task-question", "#question")
    await visit(f"tasks/{sent}", "task-file", ".timeline .file-card .file-name:text('summary.md')")
    await visit("worklist", "worklist", "table.rows tbody tr")
    await visit(f"worklist/{todo}", "worklist-form", "#task-form")
    await visit("processes", "processes", "table.rows tr.row")
    await visit(f"processes/{inst['id']}", "process", ".diagram svg")
    await visit("definitions", "definitions", "tr.row[data-id='purchase']")
    await visit("definitions/purchase", "definition", ".diagram svg")
    await visit("incidents", "incidents", "h2:text('Incidents')")
    await visit("dead-letters", "dead-letters", "tr[data-id] button, tr[data-id] td a")
    await visit("notifications", "notifications", "table.rows tbody tr")
    await visit("memories", "memories", "#view h2")
    await page.get_by_role("combobox", name="status").select_option("proposed")
    await expect(page.locator(f"tr[data-id='{proposal.json()['id']}']")).to_be_visible()
    await fits(console, "memories, proposed")
    await console.shot(f"walk-{tag}-proposals")
    await visit("metrics", "metrics", ".stat")
    if narrow:
        # The sections are behind the menu button; the menu fits the screen too.
        await page.get_by_role("button", name="menu").click()
        await expect(page.get_by_role("link", name="Dead letters")).to_be_visible()
        await fits(console, "menu")
        await console.shot(f"walk-{tag}-menu")
