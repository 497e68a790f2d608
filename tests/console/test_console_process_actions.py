"""An instance's actions in real Chromium, offered only where its state allows: the message
a step waits for delivered from the page (its payload lands in the variables), the instance
moved to a new version of its definition with its waiting step mapped, and nothing offered
once it has ended."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import Console, Stack
from tests.console.test_console_processes import instance

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
pytestmark = pytest.mark.slow


def bpmn(last_id: str, last_name: str, *, kind: str = "message", process: str = "payment") -> str:
    """start → wait for message `payment_received` (or signal `go_live`) → a person's step
    `last_id` → end."""
    name = "payment_received" if kind == "message" else "go_live"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
    targetNamespace="t">
  <bpmn:process id="{process}" name="{process.title()}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="Wait for the payment">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:{kind}EventDefinition id="m1" {kind}Ref="Event_1" />
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="{last_id}" name="{last_name}">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="{last_id}" />
    <bpmn:sequenceFlow id="f3" sourceRef="{last_id}" targetRef="end" />
  </bpmn:process>
  <bpmn:{kind} id="Event_1" name="{name}" />
</bpmn:definitions>"""


async def call(stack: Stack, method: str, path: str, body: Any = None) -> dict[str, Any]:
    async with stack.client() as client:
        response = await client.request(method, path, json=body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result


async def test_send_a_message_then_migrate_then_nothing_once_ended(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    await call(
        stack,
        "POST",
        "/v1/process-definitions",
        {"id": "payment", "bpmn": bpmn("deliver", "Deliver")},
    )
    inst = await call(stack, "POST", "/v1/processes", {"proc_def_id": "payment"})
    assert inst["current_activity_ids"] == ["wait"]
    page = console.page
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/processes/{inst['id']}")
    status = page.locator("#process-status")
    await expect(status).to_have_text("RUNNING")

    # Only v1 exists: no migration is offered; the waiting message step offers its message.
    send = page.get_by_role("button", name="Send message “payment_received”")
    await expect(send).to_be_visible()
    await expect(page.locator("details.migrate-box")).to_have_count(0)
    await page.locator("form[data-event='payment_received'] input[name=payload]").fill("[1]")
    await send.click()
    await expect(page.get_by_role("alert").filter(has_text="must be a JSON object")).to_be_visible()
    await page.locator("form[data-event='payment_received'] input[name=payload]").fill(
        '{"paid": true, "amount": 12}'
    )
    await console.shot("process-message")
    await send.click()
    await expect(
        page.locator(".toast", has_text="Message payment_received delivered")
    ).to_be_visible()
    await expect(send).to_have_count(0)  # it waits at the person's step now
    view = await instance(stack, inst["id"])
    assert view["current_activity_ids"] == ["deliver"]
    assert view["variables"]["paid"] is True and view["variables"]["amount"] == 12

    # A second version renames the step: the page offers the migration (read again when the
    # instance's state changes, so a reload is not needed for a version published now).
    await call(
        stack, "POST", "/v1/process-definitions", {"id": "payment", "bpmn": bpmn("ship", "Ship it")}
    )
    await page.reload()
    box = page.locator("details.migrate-box")
    await expect(box).to_be_visible()
    await box.locator("summary").click()
    mapping = box.locator("select[name=map][data-from='deliver']")
    await expect(mapping).to_be_visible()
    # `deliver` is not a node of v2: the page does not guess, it asks.
    await box.get_by_role("button", name="Migrate").click()
    await expect(
        page.get_by_role("alert").filter(has_text="choose where deliver goes in v2")
    ).to_be_visible()
    await mapping.select_option("ship")
    await console.shot("process-migrate")
    await box.get_by_role("button", name="Migrate").click()
    await expect(page.locator(".toast", has_text="Instance moved to v2")).to_be_visible()
    view = await instance(stack, inst["id"])
    assert view["version"] == 2 and view["current_activity_ids"] == ["ship"]
    await expect(page.locator(".diagram .node.active")).to_contain_text("Ship it")
    await expect(box.locator("summary")).to_contain_text("now v2")  # back to v1 stays possible
    migrated = [t for t in view["open_tasks"] if t["status"] == "TODO"]
    assert [t["activity_id"] for t in migrated] == ["ship"]

    # Cancelled: no action is offered any more.
    await page.get_by_role("button", name="Cancel instance").click()
    await expect(status).to_have_text("CANCELLED")
    await expect(page.get_by_role("button", name="Cancel instance")).to_have_count(0)
    await expect(page.locator(".instance-actions")).to_have_count(0)
    await expect(page.locator("#view")).to_contain_text("no action applies")


async def test_send_a_signal_to_a_waiting_instance(
    console: Console, signed_in_url: str, stack: Stack
) -> None:
    definition = {
        "id": "launch",
        "bpmn": bpmn("announce", "Announce", kind="signal", process="launch"),
    }
    await call(stack, "POST", "/v1/process-definitions", definition)
    inst = await call(stack, "POST", "/v1/processes", {"proc_def_id": "launch"})
    page = console.page
    await page.goto(signed_in_url)
    await page.goto(f"{stack.url}/console#/processes/{inst['id']}")
    send = page.get_by_role("button", name="Send signal “go_live”")
    await expect(send).to_be_visible()
    await expect(page.get_by_role("button", name="Send message", exact=False)).to_have_count(0)
    await send.click()
    await expect(page.locator(".toast", has_text="Signal go_live delivered")).to_be_visible()
    await expect(send).to_have_count(0)
    await expect(page.locator(".diagram g[data-node='announce']")).to_have_attribute(
        "data-state", "active"
    )
    assert (await instance(stack, inst["id"]))["current_activity_ids"] == ["announce"]
