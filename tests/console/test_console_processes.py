"""The console's process pages in real Chromium: a definition's diagram drawn by the page,
an instance started from it, the human step's form (from its form definition) completed in
the worklist, the instance followed live to its end with its steps marked on the diagram,
and an incident retried from the incidents page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.conftest import Console, Stack
from tests.support import wait_until

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow

REQUESTER = "ann@example.com"


async def instance(stack: Stack, instance_id: str) -> dict[str, Any]:
    async with stack.client() as client:
        response = await client.get(f"/v1/processes/{instance_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def start_from_definition(console: Console, signed_in_url: str) -> str:
    page = console.page
    await page.goto(signed_in_url)
    await page.get_by_role("link", name="Definitions").click()
    await page.locator("tr.row[data-id='purchase']").click()
    await expect(page).to_have_url(re.compile(r"#/definitions/purchase$"))
    await page.get_by_role("textbox", name="role requester").fill(REQUESTER)
    await page.get_by_role("button", name="Start an instance").click()
    await expect(page).to_have_url(re.compile(r"#/processes/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


async def open_work_item(console: Console, stack: Stack, instance_id: str) -> None:
    page = console.page
    await page.get_by_role("link", name="Worklist").click()
    await page.get_by_role("searchbox", name="user").fill(REQUESTER)
    await page.get_by_role("searchbox", name="user").press("Enter")
    view = await instance(stack, instance_id)
    (todo,) = [t for t in view["open_tasks"] if t["status"] == "TODO"]
    await page.locator(f"tr.row[data-id='{todo['id']}']").click()
    await expect(page.locator("#task-form")).to_be_visible()


async def test_start_complete_a_form_and_watch_the_instance_finish(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    await page.goto(signed_in_url)
    await page.get_by_role("link", name="Definitions").click()
    await page.locator("tr.row[data-id='purchase']").click()
    diagram = page.locator(".diagram svg")
    for node in ("start", "request", "size", "approve", "check", "end"):
        await expect(diagram.locator(f"g[data-node='{node}']")).to_have_count(1)
    await expect(diagram.locator("path.flow")).to_have_count(6)
    await console.shot("definition")

    instance_id = await start_from_definition(console, signed_in_url)
    await expect(page.locator("#process-status")).to_have_text("RUNNING")
    request = page.locator(".diagram g[data-node='request']")
    await expect(request).to_have_attribute("data-state", "active")
    await expect(page.locator(".diagram g[data-node='start']")).to_have_attribute(
        "data-state", "done"
    )
    await console.shot("process-waiting")

    # The person's step: the form is the purchase form's fields, completed in the page.
    await open_work_item(console, stack, instance_id)
    form = page.locator("#task-form")
    await expect(form.locator("label[data-field]")).to_have_count(3)
    await form.locator("input[name=item]").fill("a laptop")
    await form.locator("input[name=amount]").fill("800")
    await form.locator("select[name=urgency]").select_option("high")
    await console.shot("worklist-form")
    await form.get_by_role("button", name="Complete").click()

    # Back on the instance, followed live: the demo agent checks the budget, it ends.
    await expect(page).to_have_url(re.compile(f"#/processes/{instance_id}$"))
    await expect(page.locator("#process-status")).to_have_text("COMPLETED", timeout=30_000)
    for node in ("request", "size", "check", "end"):
        await expect(page.locator(f".diagram g[data-node='{node}']")).to_have_attribute(
            "data-state", "done"
        )
    await expect(page.locator(".diagram g[data-node='approve']")).to_have_attribute(
        "data-state", "idle"
    )
    await expect(page.get_by_role("button", name="Cancel instance")).to_have_count(0)
    await expect(page.locator("ol.timeline")).to_contain_text("decision")
    await console.shot("process-completed")
    view = await instance(stack, instance_id)
    assert view["status"] == "COMPLETED"
    assert view["variables"]["purchase_form"] == {
        "item": "a laptop",
        "amount": 800,
        "urgency": "high",
    }


async def test_an_incident_is_retried_from_the_incidents_page(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    page = console.page
    instance_id = await start_from_definition(console, signed_in_url)
    await open_work_item(console, stack, instance_id)
    # No amount: neither flow's condition can be decided, the instance stops at the gateway.
    await page.locator("#task-form input[name=item]").fill("a chair")
    await page.locator("#task-form").get_by_role("button", name="Complete").click()
    await expect(page.locator("#process-status")).to_have_text("INCIDENT", timeout=20_000)
    await expect(page.locator(".diagram g[data-node='size']")).to_have_attribute(
        "data-state", "incident"
    )
    await console.shot("process-incident")

    await page.get_by_role("link", name="Incidents").click()
    card = page.locator(".card", has=page.locator(f"a[href='#/processes/{instance_id}']"))
    await expect(card.locator("[data-incident]")).to_have_count(1)
    await console.shot("incidents")
    await card.locator("input[name=variables]").fill('{"amount": 50}')
    await card.get_by_role("button", name="Retry here").click()
    await expect(page.locator(".toast", has_text="Incident resolved")).to_be_visible()

    async def completed() -> bool:
        return (await instance(stack, instance_id))["status"] == "COMPLETED"

    await wait_until(completed, 30)
    await page.goto(f"{stack.url}/console#/processes/{instance_id}")
    await expect(page.locator("#process-status")).to_have_text("COMPLETED")


async def test_a_refused_completion_shows_inline_and_changes_nothing(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    async with stack.client() as client:
        started = await client.post(
            "/v1/processes", json={"proc_def_id": "purchase", "roles": {"requester": REQUESTER}}
        )
        assert started.status_code == 201, started.text
        instance_id = started.json()["id"]
    page = console.page
    await page.goto(signed_in_url)
    await open_work_item(console, stack, instance_id)
    todo = page.url.rsplit("/", 1)[1]
    # Someone else completes the item while this page shows its form.
    async with stack.client() as client:
        done = await client.post(
            f"/v1/tasks/{todo}/complete", json={"output": {"item": "desk", "amount": 2000}}
        )
        assert done.status_code == 200, done.text
    form = page.locator("#task-form")
    await form.locator("input[name=item]").fill("a chair")
    await form.get_by_role("button", name="Complete").click()
    await expect(form.locator(".error")).to_contain_text(
        "is DONE; cannot complete it"
    )  # 409, inline
    await expect(page).to_have_url(re.compile(f"#/worklist/{todo}$"))  # still here
    await console.shot("worklist-refused")
    view = await instance(stack, instance_id)
    (task,) = [t for t in view["tasks"] if t["id"] == todo]
    assert task["output"] == {"item": "desk", "amount": 2000}  # the page changed nothing
