"""Roles: what a member, a tenant admin and an operator may do (real API process)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import Api
from tests.support import StartProcess, api_url

SECRET = "role-test-jwt-secret-that-is-long-enough-for-hs256"


def code(response: Any) -> str:
    return str(response.json()["error"]["code"])


async def test_members_run_work_but_only_admins_manage_the_tenant(api: Api, db: Database) -> None:
    member = (await ApiKeyRepository(db).create("acme", "m", Role.MEMBER)).key
    admin = api.key_a
    managing = [
        ("POST", "/v1/agents", {"name": "bot", "agent_orch": "demo"}),
        ("PUT", "/v1/agents/bot", {"agent_orch": "demo"}),
        ("PATCH", "/v1/agents/bot", {"model": "m"}),
        ("DELETE", "/v1/agents/bot", None),
        ("POST", "/v1/mcp-servers", {"name": "s", "url": "https://mcp.example.com/mcp"}),
        ("POST", "/v1/mcp-servers/s/disable", None),
        ("DELETE", "/v1/mcp-servers/s", None),
        ("POST", "/v1/keys", {"name": "k"}),
        ("GET", "/v1/keys", None),
        ("DELETE", "/v1/keys/abcdef01", None),
    ]
    async with api.client(member) as client:
        for method, path, body in managing:
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert code(response) == "forbidden"
        # ... and nothing was changed by any of them
        assert (await client.get("/v1/agents")).json() == []
        assert (await client.get("/v1/mcp-servers")).json() == []
        # a member runs work and reads the tenant's profiles
        task = await client.post("/v1/tasks", json={"agent_orch": "demo", "query": "hi"})
        assert task.status_code == 201, task.text
    async with api.client(admin) as client:
        created = await client.post("/v1/agents", json={"name": "bot", "agent_orch": "demo"})
        assert created.status_code == 201, created.text
    async with api.client(member) as client:
        assert [a["name"] for a in (await client.get("/v1/agents")).json()] == ["bot"]


async def test_admins_manage_keys_up_to_their_own_role(api: Api) -> None:
    async with api.client(api.key_a) as admin:
        made = await admin.post("/v1/keys", json={"name": "ci", "role": "member"})
        assert made.status_code == 201, made.text
        new = made.json()
        assert new["role"] == "member" and new["tenant_id"] == "acme"
        assert new["key"].startswith(f"pgpt_{new['prefix']}_")
        listed = (await admin.get("/v1/keys")).json()
        assert new["prefix"] in [k["prefix"] for k in listed]
        assert all("key" not in k for k in listed)  # the key itself is shown once only
        higher = await admin.post("/v1/keys", json={"role": "operator"})
        assert higher.status_code == 403 and code(higher) == "forbidden"
        assert len((await admin.get("/v1/keys")).json()) == len(listed)
        async with api.client(new["key"]) as fresh:
            assert (await fresh.get("/v1/tasks")).status_code == 200
        assert (await admin.delete(f"/v1/keys/{new['prefix']}")).status_code == 204
        async with api.client(new["key"]) as fresh:
            assert (await fresh.get("/v1/tasks")).status_code == 401
        again = await admin.delete(f"/v1/keys/{new['prefix']}")
        assert again.status_code == 404 and code(again) == "key_not_found"
    async with api.client(api.key_b) as other:  # another tenant cannot revoke acme's keys
        assert (await other.delete(f"/v1/keys/{listed[0]['prefix']}")).status_code == 404
    async with api.client(api.key_a) as admin:
        assert (await admin.get("/v1/tasks")).status_code == 200


async def test_an_admin_cannot_revoke_a_higher_key_of_its_tenant(api: Api, db: Database) -> None:
    operator = await ApiKeyRepository(db).create("acme", "root", Role.OPERATOR)
    async with api.client(api.key_a) as admin:
        refused = await admin.delete(f"/v1/keys/{operator.prefix}")
        assert refused.status_code == 403 and code(refused) == "forbidden"
    async with api.client(operator.key) as ops:
        assert (await ops.get("/v1/tenants")).status_code == 200  # still valid


async def test_operator_settings_are_out_of_reach_of_tenant_keys(api: Api, db: Database) -> None:
    operator = (await ApiKeyRepository(db).create("ops", "root", Role.OPERATOR)).key
    async with api.client(api.key_a) as admin:
        for method, path, body in [
            ("GET", "/v1/tenants", None),
            ("GET", "/v1/tenants/acme", None),
            ("PUT", "/v1/tenants/acme", {"max_pending_tasks": 1}),
            ("POST", "/v1/tenants/globex/keys", {"role": "admin"}),
        ]:
            response = await admin.request(method, path, json=body)
            assert response.status_code == 403, (path, response.text)
    assert await db.fetchval("SELECT max_pending_tasks FROM tenants WHERE id = 'acme'") is None
    async with api.client(operator) as ops:
        created = await ops.put("/v1/tenants/initech", json={"max_pending_tasks": 2})
        assert created.status_code == 201, created.text
        assert created.json()["max_pending_tasks"] == 2
        kept = await ops.put("/v1/tenants/initech", json={})
        assert kept.status_code == 200 and kept.json()["max_pending_tasks"] == 2
        key = await ops.post("/v1/tenants/initech/keys", json={"role": "admin"})
        assert key.status_code == 201 and key.json()["tenant_id"] == "initech"
        missing = await ops.post("/v1/tenants/nobody/keys", json={})
        assert missing.status_code == 404 and code(missing) == "tenant_not_found"
        assert "initech" in [t["id"] for t in (await ops.get("/v1/tenants")).json()]
    async with api.client(key.json()["key"]) as initech:  # the limit applies to the tenant
        for _ in range(2):
            ok = await initech.post(
                "/v1/tasks", json={"agent_orch": "demo", "run_at": "2999-01-01T00:00:00Z"}
            )
            assert ok.status_code == 201, ok.text
        full = await initech.post("/v1/tasks", json={"agent_orch": "demo"})
        assert full.status_code == 429 and code(full) == "too_many_pending"


async def test_a_token_carries_its_role(db: Database, start_process: StartProcess) -> None:
    await db.execute("INSERT INTO tenants (id) VALUES ('acme')")
    server = start_process("api", env={"PROCESSGPT_API_PORT": "0", "PROCESSGPT_JWT_SECRET": SECRET})
    url = await api_url(server)

    def bearer(**claims: Any) -> dict[str, str]:
        claims.setdefault("exp", int(time.time()) + 300)
        return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}

    profile = {"name": "bot", "agent_orch": "demo"}
    async with httpx.AsyncClient(base_url=url) as client:
        plain = await client.post("/v1/agents", json=profile, headers=bearer(tenant_id="acme"))
        assert plain.status_code == 403  # no role claim: a member
        nested = bearer(app_metadata={"tenant_id": "acme", "processgpt_role": "admin"})
        made = await client.post("/v1/agents", json=profile, headers=nested)
        assert made.status_code == 201, made.text
        top = bearer(tenant_id="acme", processgpt_role="operator")
        assert (await client.get("/v1/tenants", headers=top)).status_code == 200
        for bad in ("root", "ADMIN", ["admin"], {"admin": True}):
            refused = await client.get(
                "/v1/tasks", headers=bearer(tenant_id="acme", processgpt_role=bad)
            )
            assert refused.status_code == 401, bad
