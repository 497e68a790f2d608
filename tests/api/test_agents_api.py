"""Agent profiles and MCP servers over HTTP (real api and worker processes)."""

from __future__ import annotations

import httpx

from processgpt.db.database import Database
from tests.api.conftest import Api
from tests.api.test_tasks_api import error_code, wait_status

ENV_SECRET = "env-secret-value-123"
HEADER_SECRET = "Bearer header-secret-456"
URL_SECRET = "url-token-789"


async def test_agent_profile_crud(api: Api) -> None:
    async with api.client() as client:
        created = await client.post(
            "/v1/agents",
            json={
                "name": "analyst",
                "agent_orch": "demo",
                "model": "m-1",
                "instructions": "Analyse.",
                "persona": "Careful.",
                "tools": ["calc", "search__lookup", "calc"],
                "skills": ["finance"],
            },
        )
        assert created.status_code == 201, created.text
        profile = created.json()
        assert profile["name"] == "analyst" and profile["agent_orch"] == "demo"
        assert profile["tools"] == ["calc", "search__lookup"]  # deduplicated
        assert profile["skills"] == ["finance"]

        assert (await client.get("/v1/agents/analyst")).json() == profile
        assert [p["name"] for p in (await client.get("/v1/agents")).json()] == ["analyst"]

        patched = await client.patch("/v1/agents/analyst", json={"model": "m-2"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["model"] == "m-2"
        assert patched.json()["instructions"] == "Analyse."  # kept

        replaced = await client.put("/v1/agents/analyst", json={"agent_orch": "demo"})
        assert replaced.status_code == 200, replaced.text
        body = replaced.json()
        assert body["model"] is None and body["instructions"] is None and body["tools"] == []

        assert (await client.delete("/v1/agents/analyst")).status_code == 204
        missing = await client.get("/v1/agents/analyst")
        assert missing.status_code == 404 and error_code(missing) == "agent_not_found"
        assert (await client.get("/v1/agents")).json() == []


async def test_agent_profile_bad_input(api: Api, db: Database) -> None:
    async with api.client() as client:
        cases = [
            ({"name": "Bad Name", "agent_orch": "demo"}, 422, "invalid_input"),
            ({"name": "x", "agent_orch": "nobody"}, 422, "unknown_agent"),
            ({"name": "x", "agent_orch": "demo", "extra": 1}, 422, "invalid_input"),
            ({"name": "x"}, 422, "invalid_input"),
            ({"name": "x", "agent_orch": "demo", "tools": "calc"}, 422, "invalid_input"),
            ({"name": "x", "agent_orch": "demo", "model": ""}, 422, "invalid_input"),
            ({"name": "demo", "agent_orch": "demo"}, 409, "name_taken"),  # an orchestrator
        ]
        for body, status, code in cases:
            response = await client.post("/v1/agents", json=body)
            assert response.status_code == status, (body, response.text)
            assert error_code(response) == code, (body, response.text)
        assert await db.fetchval("SELECT count(*) FROM agents") == 0

        first = await client.post("/v1/agents", json={"name": "a", "agent_orch": "demo"})
        assert first.is_success
        again = await client.post("/v1/agents", json={"name": "a", "agent_orch": "demo"})
        assert again.status_code == 409 and error_code(again) == "name_taken"
        bad_orch = await client.patch("/v1/agents/a", json={"agent_orch": "nobody"})
        assert bad_orch.status_code == 422 and error_code(bad_orch) == "unknown_agent"
        missing = await client.patch("/v1/agents/zzz", json={"model": "m"})
        assert missing.status_code == 404 and error_code(missing) == "agent_not_found"


async def test_profiles_and_servers_are_tenant_scoped(api: Api) -> None:
    async with api.client(api.key_a) as acme, api.client(api.key_b) as globex:
        assert (await acme.post("/v1/agents", json={"name": "a", "agent_orch": "demo"})).is_success
        server = {"name": "calc", "url": "https://calc.example/mcp"}
        assert (await acme.post("/v1/mcp-servers", json=server)).is_success

        assert (await globex.get("/v1/agents")).json() == []
        assert (await globex.get("/v1/mcp-servers")).json() == []
        for method, path in [
            ("GET", "/v1/agents/a"),
            ("PATCH", "/v1/agents/a"),
            ("DELETE", "/v1/agents/a"),
            ("POST", "/v1/mcp-servers/calc/disable"),
            ("POST", "/v1/mcp-servers/calc/enable"),
            ("DELETE", "/v1/mcp-servers/calc"),
        ]:
            kwargs = {"json": {}} if method == "PATCH" else {}
            response = await globex.request(method, path, **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 404, (method, path, response.text)
        # the same names are free in another tenant
        same = await globex.post("/v1/agents", json={"name": "a", "agent_orch": "demo"})
        assert same.is_success
        assert (await globex.post("/v1/mcp-servers", json=server)).is_success
        # a task naming another tenant's profile is refused
        only = await acme.post("/v1/agents", json={"name": "acme-only", "agent_orch": "demo"})
        assert only.is_success
        refused = await globex.post("/v1/tasks", json={"agent_orch": "acme-only"})
        assert refused.status_code == 422 and error_code(refused) == "unknown_agent"
        assert (await acme.get("/v1/agents/a")).status_code == 200
        async with httpx.AsyncClient(base_url=api.url) as anon:
            assert (await anon.get("/v1/agents")).status_code == 401
            assert (await anon.get("/v1/mcp-servers")).status_code == 401


async def test_mcp_servers_never_show_secrets(api: Api, db: Database) -> None:
    async with api.client() as client:
        catalog = await client.post(
            "/v1/mcp-servers",
            json={"name": "files", "catalog": "calc", "env": {"API_KEY": ENV_SECRET}},
        )
        assert catalog.status_code == 201, catalog.text
        assert catalog.json()["env"] == {"API_KEY": "***"}
        assert catalog.json()["transport"] == "catalog" and catalog.json()["enabled"] is True
        assert catalog.json()["catalog"] == "calc"
        assert (
            catalog.json()["command"] is None and catalog.json()["args"] is None
        )  # the operator's
        http = await client.post(
            "/v1/mcp-servers",
            json={
                "name": "search",
                "url": f"https://user:pw@search.example/mcp?token={URL_SECRET}",
                "headers": {"Authorization": HEADER_SECRET},
                "enabled": False,
            },
        )
        assert http.status_code == 201, http.text
        assert http.json()["headers"] == {"Authorization": "***"}
        assert http.json()["url"] == "https://search.example"  # no path: it may hold a key
        assert http.json()["enabled"] is False

        responses = [
            catalog,
            http,
            await client.get("/v1/mcp-servers"),
            await client.get("/v1/mcp-servers/files"),
            await client.post("/v1/mcp-servers/search/enable"),
            await client.post("/v1/mcp-servers/files/disable"),
        ]
        for response in responses:
            assert response.is_success, response.text
            for secret in (ENV_SECRET, HEADER_SECRET, "header-secret", URL_SECRET, "pw@"):
                assert secret not in response.text
        listed = {s["name"]: s for s in responses[2].json()}
        assert set(listed) == {"files", "search"}
        assert (await client.get("/v1/mcp-servers/search")).json()["enabled"] is True
        assert (await client.get("/v1/mcp-servers/files")).json()["enabled"] is False
        # stored encrypted: no secret in the table's text
        stored = await db.fetchval("SELECT string_agg(config::text, ' ') FROM mcp_servers")
        for secret in (ENV_SECRET, "header-secret", URL_SECRET, "user:pw"):
            assert secret not in stored
        config = await db.fetchval(
            "SELECT config FROM mcp_servers WHERE tenant_id = 'acme' AND name = 'files'"
        )
        assert config["env"]["API_KEY"].startswith("enc:fernet:")

        assert (await client.delete("/v1/mcp-servers/files")).status_code == 204
        gone = await client.delete("/v1/mcp-servers/files")
        assert gone.status_code == 404 and error_code(gone) == "mcp_server_not_found"


async def test_mcp_server_bad_input(api: Api, db: Database) -> None:
    async with api.client() as client:
        cases = [
            ({"name": "x"}, "invalid_input"),  # neither url nor catalog
            ({"name": "x", "catalog": "calc", "url": "http://h/mcp"}, "invalid_input"),
            ({"name": "x", "url": "ftp://h/mcp"}, "invalid_input"),
            ({"name": "x", "url": "http://h/mcp", "transport": "catalog"}, "invalid_input"),
            ({"name": "x", "url": "http://h/mcp", "env": {"A": "b"}}, "invalid_input"),
            ({"name": "x", "catalog": "calc", "headers": {"A": "b"}}, "invalid_input"),
            ({"name": "x", "catalog": "calc", "env": {"API_KEY": 1}}, "invalid_input"),
            ({"name": "x", "catalog": "calc", "env": {"API_KEY": "a\x00b"}}, "invalid_input"),
            ({"name": "x", "catalog": "calc", "env": {"PATH": "/tmp"}}, "invalid_input"),
            ({"name": "x", "url": "http://h/mcp", "headers": {"A": "b\r\nX: y"}}, "invalid_input"),
            ({"name": "bad name", "url": "http://h/mcp"}, "invalid_input"),
            ({"name": "x", "url": "http://h/mcp", "extra": True}, "invalid_input"),
            ({"name": "x", "catalog": "nope"}, "unknown_mcp_catalog_entry"),
            ({"name": "x", "command": "a"}, "stdio_not_allowed"),
            ({"name": "x", "url": "http://127.0.0.1:9/mcp"}, "url_not_allowed"),
        ]
        for body, code in cases:
            response = await client.post("/v1/mcp-servers", json=body)
            assert response.status_code == 422, (body, response.text)
            assert error_code(response) == code, (body, response.text)
        assert await db.fetchval("SELECT count(*) FROM mcp_servers") == 0
        first = await client.post("/v1/mcp-servers", json={"name": "x", "url": "http://h/mcp"})
        assert first.is_success, first.text
        pem = {"API_KEY": "-----BEGIN KEY-----\nabc\r\n-----END KEY-----"}  # line breaks are fine
        multiline = await client.post(
            "/v1/mcp-servers", json={"name": "pem", "catalog": "calc", "env": pem}
        )
        assert multiline.status_code == 201, multiline.text
        dup = await client.post("/v1/mcp-servers", json={"name": "x", "catalog": "calc"})
        assert dup.status_code == 409 and error_code(dup) == "name_taken"
        missing = await client.post("/v1/mcp-servers/nope/enable")
        assert missing.status_code == 404 and error_code(missing) == "mcp_server_not_found"


async def test_the_catalog_lists_what_the_operator_offers(api: Api) -> None:
    async with api.client() as client:
        listed = await client.get("/v1/mcp-catalog")
        assert listed.status_code == 200, listed.text
        assert listed.json() == [
            {
                "name": "calc",
                "description": "the test MCP server",
                "env": sorted(["PROCESSGPT_TEST_MCP_TAG", "SECRET_TOKEN", "API_KEY"]),
            }
        ]
        assert "mcp_server.py" not in listed.text  # the operator's command stays hidden


async def test_a_task_named_by_profile_runs_its_orchestrator(api: Api) -> None:
    async with api.client() as client:
        created = await client.post(
            "/v1/agents", json={"name": "shouter", "agent_orch": "demo", "model": "m"}
        )
        assert created.status_code == 201, created.text
        response = await client.post(
            "/v1/tasks",
            json={"agent_orch": "shouter", "query": "by profile", "input": {"steps": 1}},
        )
        assert response.status_code == 201, response.text
        task = response.json()
        assert task["agent_orch"] == "demo" and task["agent_profile"] == "shouter"
        done = await wait_status(client, task["id"], "DONE")
        assert done["output"]["upper"] == "BY PROFILE"
        plain = await client.post("/v1/tasks", json={"agent_orch": "demo", "query": "x"})
        assert plain.json()["agent_profile"] is None
