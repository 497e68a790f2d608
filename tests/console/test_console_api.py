"""What the console needs from the API, over HTTP against the real api process: its files
served with a strict Content-Security-Policy (nothing else under /console/assets), the
stored forms of work items, and searching tasks."""

from __future__ import annotations

import httpx

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.domain.roles import Role
from tests.console.conftest import Stack


async def test_the_console_and_its_files_are_served_with_a_strict_policy(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as anon:
        page = await anon.get("/console")
        assert page.status_code == 200 and "<title>processgpt console</title>" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert "<script>" not in page.text  # no inline script: the module is a file
        script = await anon.get("/console/assets/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "/v1/tasks" in (await anon.get("/console/assets/tasks.js")).text
        style = await anon.get("/console/assets/console.css")
        assert style.headers["content-type"].startswith("text/css")
        for name in ("nope.js", "..%2Fconsole.html", "..%2F..%2Froutes%2Fconsole.py"):
            missing = await anon.get(f"/console/assets/{name}")
            assert missing.status_code == 404, name
            assert missing.json()["error"]["code"] == "not_found"


async def test_a_stored_form_is_read_by_its_tenant_only(stack: Stack) -> None:
    async with stack.client() as client:
        form = await client.get("/v1/forms/purchase_form")
        assert form.status_code == 200, form.text
        body = form.json()
        assert body["id"] == "purchase_form" and body["proc_def_id"] == "purchase"
        assert [f["key"] for f in body["fields"]] == ["item", "amount", "urgency"]
        missing = await client.get("/v1/forms/no_such_form")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "form_not_found"
    other = (await ApiKeyRepository(stack.db).create("globex", role=Role.MEMBER)).key
    async with httpx.AsyncClient(
        base_url=stack.url, headers={"Authorization": f"Bearer {other}"}
    ) as stranger:
        assert (await stranger.get("/v1/forms/purchase_form")).status_code == 404
    async with httpx.AsyncClient(base_url=stack.url) as anon:
        assert (await anon.get("/v1/forms/purchase_form")).status_code == 401


async def test_tasks_are_searched_by_text_agent_or_id(stack: Stack) -> None:
    async with stack.client() as client:
        created = []
        for query in ("Order PAPER for the office", "order pens", "call the bank"):
            response = await client.post(
                "/v1/tasks", json={"agent_orch": "demo", "query": query, "input": {"steps": 0}}
            )
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])

        async def found(q: str) -> list[str]:
            response = await client.get("/v1/tasks", params={"q": q, "limit": 500})
            assert response.status_code == 200, response.text
            return [t["id"] for t in response.json()["items"]]

        assert await found("order p") == [created[1], created[0]]  # newest first
        assert await found("100%_") == []  # no wildcards: % and _ are text
        assert await found(created[2]) == [created[2]]
        assert await found(created[2].upper()) == [created[2]]
        assert set(await found("DEMO")) >= set(created)
        bad = await client.get("/v1/tasks", params={"q": "a\x00b"})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_input"
