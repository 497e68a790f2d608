"""The console's metrics page in real Chromium: the tenant's queue and timings as the
summary endpoint gives them."""

from __future__ import annotations

import pytest

from processgpt.db.tasks import TaskRepository
from tests.console.conftest import Console, Stack
from tests.support import wait_until

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow


async def test_metrics_show_the_queue_and_timings(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    async with stack.client() as client:
        # One that ran, one waiting for a person: both counted by the page.
        for body in (
            {"agent_orch": "demo", "query": "counted", "input": {"steps": 0}},
            {"agent_orch": "demo", "query": "asks", "input": {"steps": 0, "ask": "ok?"}},
        ):
            response = await client.post("/v1/tasks", json=body)
            assert response.status_code == 201, response.text
    repo = TaskRepository(stack.db)

    async def settled() -> bool:
        tasks = await repo.list_tasks("acme", agent_orch="demo", limit=500)
        return all(t.status.value in ("DONE", "INPUT_REQUIRED", "FAILED", "CANCELLED", "TODO")
                   for t in tasks)  # fmt: skip

    await wait_until(settled, 30)
    async with stack.client() as client:
        summary = (await client.get("/v1/metrics/summary")).json()
    demo_queue = next(q for q in summary["queue"] if q["agent"] == "demo")
    page = console.page
    await page.goto(signed_in_url)
    await page.get_by_role("link", name="Metrics").click()
    row = page.locator("tr[data-agent='demo']").first
    await expect(row.locator("td").nth(3)).to_have_text(str(demo_queue["input_required"]))
    timing = page.locator("tbody tr[data-agent='demo']").nth(1)
    await expect(timing.locator("td").nth(1)).not_to_have_text("0")
    await expect(page.locator("[data-stat=input] .n")).not_to_have_text("0")
    await console.shot("metrics")
