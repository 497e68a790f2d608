"""An operator sets a tenant's weight in claims and its rate of task starts (real API
process); tenants' own keys cannot, and bad values change nothing."""

from __future__ import annotations

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import Api


async def _stored(db: Database, tenant: str) -> tuple[int, float | None]:
    row = await db.fetchrow(
        "SELECT weight, max_tasks_per_second FROM tenants WHERE id = $1", tenant
    )
    assert row is not None
    return row["weight"], row["max_tasks_per_second"]


async def test_an_operator_sets_a_tenants_weight_and_rate(api: Api, db: Database) -> None:
    operator = (await ApiKeyRepository(db).create("ops", "root", Role.OPERATOR)).key
    async with api.client(api.key_a) as admin:
        refused = await admin.put("/v1/tenants/acme", json={"weight": 1000})
        assert refused.status_code == 403, refused.text
    assert await _stored(db, "acme") == (1, None)
    async with api.client(operator) as ops:
        created = await ops.put(
            "/v1/tenants/initech", json={"weight": 3, "max_tasks_per_second": 2.5}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["weight"], body["max_tasks_per_second"]) == (3, 2.5)
        kept = await ops.put("/v1/tenants/initech", json={"max_pending_tasks": 7})
        assert kept.status_code == 200, kept.text
        assert (kept.json()["weight"], kept.json()["max_tasks_per_second"]) == (3, 2.5)
        lifted = await ops.put("/v1/tenants/initech", json={"max_tasks_per_second": None})
        assert lifted.json()["max_tasks_per_second"] is None and lifted.json()["weight"] == 3
        assert await _stored(db, "initech") == (3, None)
        for bad in ({"weight": 0}, {"weight": 1001}, {"max_tasks_per_second": 0}, {"weight": "x"}):
            response = await ops.put("/v1/tenants/initech", json=bad)
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["error"]["code"] == "invalid_input", response.text
        assert await _stored(db, "initech") == (3, None)
        listed = {t["id"]: t for t in (await ops.get("/v1/tenants")).json()}
        assert listed["initech"]["weight"] == 3 and listed["acme"]["weight"] == 1
