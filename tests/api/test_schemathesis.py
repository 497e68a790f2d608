"""Property-based API tests: schemathesis generates requests from the running API's own
``/openapi.json`` (valid and invalid ones) and every answer must be below 500.

The streaming endpoints are left out: they stay open while a task runs. Bounded: a few
examples per operation and mode, no shrinking, no example database."""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.conftest import Api

EXAMPLES = 25


def _fuzz(url: str, key: str) -> list[str]:
    """Every 5xx found, as ``METHOD path -> status body`` lines."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    schema = schema.exclude(path_regex=r"/stream$")
    # Fixed values for the auth headers the schema declares, so requests get past the key
    # check (401 is covered by the API tests).
    auth = {"authorization": f"Bearer {key}", "x-api-key": key}
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode, headers=auth))
            def probe(case: Any) -> None:
                response = case.call(base_url=url, headers=auth, timeout=10)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code} "
                        f"{response.text[:200]} (body={case.body!r:.200}, query={case.query})"
                    )

            try:
                probe()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no inputs)
    assert operations >= 10, operations
    assert sum(statuses.values()) >= operations * 5, statuses
    print(f"schemathesis: {operations} operations, statuses {sorted(statuses.items())}")
    return failures


async def test_no_generated_request_gets_a_5xx(api: Api) -> None:
    failures = await asyncio.wait_for(asyncio.to_thread(_fuzz, api.url, api.key_a), 90)
    assert not failures, "\n".join(failures)
