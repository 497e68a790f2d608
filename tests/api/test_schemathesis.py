"""Property-based API tests: schemathesis sends the document's examples and generates requests
(valid and invalid ones) from the running API's own ``/openapi.json``, authenticated. Every
answer must be below 500, have a status code the document declares for that operation and
match the declared content type; the main operations must have succeeded at least once, so
the fuzzing reached the handlers.

The streaming endpoints are left out: they stay open while a task runs. Bounded: a few
examples per operation and mode, no shrinking, no example database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from processgpt.db.api_keys import ApiKeyRepository
from processgpt.db.database import Database
from processgpt.domain.roles import Role
from processgpt.protocols.views import PUBLISH_EXAMPLE
from tests.api.conftest import Api

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
MUST_SUCCEED = {
    "GET /healthz",
    "GET /readyz",
    "GET /v1/tasks",
    "POST /v1/tasks",
    "POST /v1/processes",
    "GET /v1/processes",
    "GET /v1/worklist",
    "POST /complete",
    "GET /v1/process-definitions",
    "POST /v1/process-definitions",
    "GET /v1/agents",
    "POST /v1/agents",
    "GET /v1/mcp-servers",
    "GET /v1/orchestrators",
    "GET /v1/keys",
    "POST /v1/keys",
    "GET /v1/tenants",
    "PUT /v1/tenants/{tenant_id}",
}
"""Operations whose valid requests must have been answered 2xx at least once."""


def _probe(strategy: Any, examples: int, url: str, auth: dict[str, str], record: Any) -> Any:
    """A hypothesis test sending ``examples`` requests drawn from ``strategy``; ``record(case,
    response, failure)`` is told of each answer."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def probe(case: Any) -> None:
        response = case.call(base_url=url, headers=auth, timeout=10)
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except FailureGroup as exc:
            record(case, response, "; ".join(str(e).splitlines()[0] for e in exc.exceptions))
        else:
            record(case, response, None)

    return probe


def _fuzz(url: str, key: str) -> tuple[list[str], dict[str, set[int]]]:
    """Every failed check, as ``METHOD path -> status: what`` lines, and the statuses seen
    per operation."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    schema = schema.exclude(path_regex=r"/stream$")
    auth = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    seen: dict[str, set[int]] = {}

    def record(case: Any, response: Any, failure: str | None) -> None:
        label = f"{case.method.upper()} {case.operation.path}"
        seen.setdefault(label, set()).add(response.status_code)
        if failure is not None:
            failures.append(
                f"{label} -> {response.status_code}: {failure[:300]} "
                f"(body={case.body!r:.200}, query={case.query})"
            )

    for result in schema.get_all_operations():
        operation = result.ok()
        for example in operation.get_strategies_from_examples():  # the document's examples
            _probe(example, 1, url, auth, record)()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _probe(operation.as_strategy(generation_mode=mode), EXAMPLES, url, auth, record)()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no inputs)
    return failures, seen


@pytest.mark.timeout(300)  # ~40 operations, each probed ~45 times: over the default 120 s
async def test_generated_requests_get_declared_answers(api: Api, db: Database) -> None:
    operator = (await ApiKeyRepository(db).create("acme", "fuzz", Role.OPERATOR)).key
    async with api.client(operator) as client:  # the definition the examples start
        published = await client.post("/v1/process-definitions", json=PUBLISH_EXAMPLE)
        assert published.status_code == 201, published.text
    failures, seen = await asyncio.wait_for(asyncio.to_thread(_fuzz, api.url, operator), 240)
    assert not failures, "\n".join(failures[:40])
    assert len(seen) >= 25, sorted(seen)
    succeeded = {op for op, statuses in seen.items() if any(200 <= s < 300 for s in statuses)}
    assert succeeded >= MUST_SUCCEED, [(op, seen[op]) for op in sorted(MUST_SUCCEED - succeeded)]
