"""The OpenAPI document and ``/docs``, as a client of a real API process sees them."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.api.conftest import Api

PUBLIC = {"/livez", "/healthz", "/readyz", "/a2a/{agent}/.well-known/agent-card.json"}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


async def test_every_operation_declares_auth_errors_and_examples(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        doc = (await client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    error_ref = "#/components/schemas/ErrorBody"
    assert set(doc["components"]["schemas"]["ErrorBody"]["properties"]) == {"error"}
    operations = _operations(doc)
    assert len(operations) >= 30
    for method, path, op in operations:
        where = f"{method} {path}"
        assert op.get("description") or op.get("summary"), where
        names = {p["name"].lower() for p in op.get("parameters", [])}
        assert not names & {"authorization", "x-api-key"}, where  # schemes, not parameters
        if path not in PUBLIC:
            assert {"bearer": []} in op["security"] and {"apiKey": []} in op["security"], where
            assert "401" in op["responses"], where
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (where, status)
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            schema = body.get("schema", {})
            if "$ref" in schema:
                name = schema["$ref"].rsplit("/", 1)[1]
                schema = doc["components"]["schemas"][name]
            has_example = (
                "example" in body
                or "examples" in body
                or "examples" in schema
                or all(
                    "examples" in p or "default" in p for p in schema.get("properties", {}).values()
                )
            )
            assert has_example, where
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # not our error shape


async def test_the_docs_page_works_offline(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
        found = [a or b for a, b in urls]
        assert found, page.text
        for url in found:
            assert not url.startswith(("http:", "https:", "//")), url  # no CDN
            asset = await client.get(url)
            assert asset.status_code == 200, url
        assert "/openapi.json" in found
