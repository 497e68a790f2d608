"""Tokens instead of keys: Supabase-style HS256 JWTs and asymmetric JWTs from a JWKS URL,
against a real API process."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from processgpt.api.auth import _CACHE_SECONDS as CACHE_SECONDS
from processgpt.db.database import Database
from tests.support import StartProcess, cli

SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def jwks() -> Iterator[tuple[Any, str]]:
    """A signing key and a local JWKS URL publishing its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    document = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = document.encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield key, f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def token(key: Any, algorithm: str = "HS256", **claims: Any) -> str:
    claims.setdefault("exp", int(time.time()) + 300)
    headers = {"kid": "k1"} if algorithm != "HS256" else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


async def test_jwts_authenticate_and_scope_to_their_tenant(
    db: Database, start_process: StartProcess, jwks: tuple[Any, str]
) -> None:
    key, jwks_url = jwks
    await db.execute("INSERT INTO tenants (id) VALUES ('acme'), ('globex')")
    server = start_process(
        "api",
        env={
            "PROCESSGPT_API_PORT": "0",
            "PROCESSGPT_JWT_SECRET": SECRET,
            "PROCESSGPT_JWT_JWKS_URL": jwks_url,
            "PROCESSGPT_JWT_AUDIENCE": "authenticated",
        },
    )
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None

    async def call(
        bearer: str, method: str = "GET", path: str = "/v1/tasks", **kwargs: Any
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=match[1]) as client:
            return await client.request(
                method, path, headers={"Authorization": f"Bearer {bearer}"}, **kwargs
            )

    supabase = token(SECRET, aud="authenticated", sub="u1", app_metadata={"tenant_id": "acme"})
    created = await call(
        supabase, "POST", "/v1/tasks", json={"agent_orch": "demo", "run_at": "2999-01-01T00:00:00Z"}
    )
    assert created.status_code == 201 and created.json()["tenant_id"] == "acme"

    rsa_token = token(key, "RS256", aud="authenticated", tenant_id="globex")
    listed = await call(rsa_token)
    assert listed.status_code == 200 and listed.json()["items"] == []  # globex sees nothing
    other = await call(rsa_token, path=f"/v1/tasks/{created.json()['id']}")
    assert other.status_code == 404

    refused = [
        token(SECRET, aud="authenticated", tenant_id="acme", exp=int(time.time()) - 10),
        token(
            "another-secret-that-is-long-enough-for-hs256", aud="authenticated", tenant_id="acme"
        ),
        token(SECRET, aud="authenticated"),  # no tenant
        token(SECRET, aud="somebody-else", tenant_id="acme"),
        jwt.encode({"tenant_id": "acme", "aud": "authenticated"}, SECRET),  # no exp
        jwt.encode(
            {"tenant_id": "acme", "aud": "authenticated", "exp": int(time.time()) + 60},
            None,
            algorithm="none",
        ),
        "not-a-token",
    ]
    for bad in refused:
        response = await call(bad)
        assert response.status_code == 401, bad
        assert response.json()["error"]["code"] == "unauthorized"
    assert SECRET not in server.log()


async def test_a_revoked_key_is_refused_at_once_by_a_running_api(
    db: Database, db_url: str, start_process: StartProcess
) -> None:
    """Key lookups are cached; `processgpt keys revoke` must still take effect immediately."""
    created = await cli(db_url, "keys", "create", "--tenant", "acme", "--name", "ci")
    other = await cli(db_url, "keys", "create", "--tenant", "acme")
    leaked, kept = created.stdout.strip(), other.stdout.strip()
    prefix = leaked.split("_")[1]
    server = start_process("api", env={"PROCESSGPT_API_PORT": "0"})
    await server.wait_for_log("api listening url=")
    match = re.search(r"api listening url=(\S+)", server.log())
    assert match is not None

    async def status(key: str) -> int:
        async with httpx.AsyncClient(base_url=match[1]) as client:
            response = await client.get("/v1/tasks", headers={"Authorization": f"Bearer {key}"})
            return response.status_code

    assert await status(leaked) == 200  # now cached by the API process
    cached_by = time.monotonic()
    revoked = await cli(db_url, "keys", "revoke", "--tenant", "acme", prefix)
    assert revoked.returncode == 0, revoked.stderr
    # Until its entry expires (CACHE_SECONDS after the lookup) the cache alone would still
    # accept the key: refused before then, the revocation's notification dropped it. The
    # bound leaves a loaded machine plenty of time and still tells the two apart.
    while await status(leaked) != 401:
        waited = time.monotonic() - cached_by
        assert waited < CACHE_SECONDS - 5, "the revoked key was accepted until its cache expired"
        await asyncio.sleep(0.02)
    assert await status(kept) == 200

    listed = await cli(db_url, "keys", "list", "--tenant", "acme")
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and leaked not in listed.stdout and kept not in listed.stdout
    assert [line.split()[0] for line in lines if "revoked" in line] == [prefix]
    again = await cli(db_url, "keys", "revoke", "--tenant", "acme", prefix)
    assert again.returncode == 2 and "error: key_not_found:" in again.stderr
    elsewhere = await cli(db_url, "keys", "revoke", "--tenant", "globex", kept.split("_")[1])
    assert elsewhere.returncode == 2  # a tenant cannot revoke another tenant's key
    assert await status(kept) == 200
