"""API keys against a real database: prefixes name one key per tenant."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database


async def test_a_prefix_taken_in_the_tenant_is_drawn_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ApiKeyRepository(db)
    draws: Iterator[str] = iter(["aaaaaaaa", "aaaaaaaa", "aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda _n: next(draws))
    first = await keys.create("acme")
    elsewhere = await keys.create("globex")  # another tenant may use the same prefix
    second = await keys.create("acme")
    assert (first.prefix, elsewhere.prefix, second.prefix) == ("aaaaaaaa", "aaaaaaaa", "bbbbbbbb")
    assert await keys.tenant_of(second.key) == "acme"

    assert await keys.revoke("acme", "aaaaaaaa")  # exactly one key
    assert await keys.tenant_of(first.key) is None
    assert await keys.tenant_of(second.key) == "acme"
    assert await keys.tenant_of(elsewhere.key) == "globex"
    listed = {k.prefix: k.revoked_at is not None for k in await keys.list_keys("acme")}
    assert listed == {"aaaaaaaa": True, "bbbbbbbb": False}
