"""compose.yaml without Docker (`docker compose config` needs the compose plugin, which this
machine lacks): interpolated as compose does from .env.example's variables, validated against
the compose-spec JSON schema (the copy check-jsonschema ships), and checked for what a
one-host deployment needs: Postgres healthy before a one-shot migration, the migration done
before the API and workers, the API on loopback unless told otherwise, workers that scale,
and a stop grace period that fits the worker's drain."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest

from processgpt.api.routes.health import router as health_router
from tests.deploy.files import (
    COMPOSE,
    ENV_EXAMPLE,
    ROOT,
    Doc,
    agents_of,
    duration_seconds,
    load_yaml,
    parse_cli,
    worker_stop_seconds,
)

PROCESSGPT_SERVICES = ("migrate", "api", "worker", "worker-llm")
WORKERS = ("worker", "worker-llm")
SECRETS = {"POSTGRES_PASSWORD": "pw0123", "PROCESSGPT_SECRET_KEYS": "a-fernet-key"}
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$\$")


class MissingVariable(Exception):
    pass


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` replaced
    as compose does (the forms this file uses)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match[1], match[2], match[3]
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("-") and unset:
            return arg or ""
        if op is not None and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return _VARIABLE.sub(replace, value)


def _compose(env: dict[str, str] | None = None) -> Doc:
    (doc,) = load_yaml(COMPOSE)
    return _interpolate(doc, SECRETS if env is None else env)  # type: ignore[no-any-return]


def _schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _command(service: Doc) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "exec form: no shell between tini and processgpt"
    return command


def test_the_file_is_valid_compose() -> None:
    schema = _schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    (raw,) = load_yaml(COMPOSE)
    for doc in (raw, _compose()):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, errors


def test_the_secrets_are_required_and_documented() -> None:
    for missing in SECRETS:
        env = {k: v for k, v in SECRETS.items() if k != missing}
        with pytest.raises(MissingVariable, match=missing):
            _compose(env)
        with pytest.raises(MissingVariable, match=missing):
            _compose({**env, missing: ""})
    example = ENV_EXAMPLE.read_text()
    used = {m[1] for m in _VARIABLE.finditer(COMPOSE.read_text()) if m[1]}
    assert "POSTGRES_PASSWORD" in used and "PROCESSGPT_SECRET_KEYS" in used
    for name in used:
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), f"{name} not in .env.example"
    for name in SECRETS:  # to be filled in, not commented out
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_postgres_is_healthy_before_a_one_shot_migration_and_the_rest_waits_for_it() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", *PROCESSGPT_SERVICES}
    postgres = services["postgres"]
    assert postgres["image"].startswith("pgvector/pgvector:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "ports" not in postgres
    migrate = services["migrate"]
    assert parse_cli(_command(migrate)).command == "migrate"
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", *WORKERS):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)


def test_every_processgpt_service_runs_the_same_image_with_the_shared_database_and_keys() -> None:
    services = _compose()["services"]
    images = {services[name]["image"] for name in PROCESSGPT_SERVICES}
    assert images == {"processgpt:0.1.0"}
    for name in PROCESSGPT_SERVICES:
        service = services[name]
        assert service["build"] == {"context": "."}, name
        assert service["env_file"] == ".env", name
        env = service["environment"]
        assert env["DATABASE_URL"] == "postgresql://processgpt:pw0123@postgres:5432/processgpt"
        assert env["PROCESSGPT_SECRET_KEYS"] == "a-fernet-key"


def test_the_api_is_on_loopback_by_default_and_checked_on_readyz() -> None:
    api = _compose()["services"]["api"]
    assert parse_cli(_command(api)).command == "api"
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    published = _compose({**SECRETS, "API_PUBLISH": "0.0.0.0:9000"})["services"]["api"]["ports"]
    assert published == ["0.0.0.0:9000:8000"]
    probe = " ".join(api["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in probe
    paths = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    assert {"/livez", "/readyz"} <= paths


def test_workers_scale_and_stop_within_their_grace_period() -> None:
    services = _compose()["services"]
    assert agents_of(_command(services["worker"])) == ["demo"]
    assert agents_of(_command(services["worker-llm"])) == ["llm", "deep-research"]
    assert services["worker-llm"]["profiles"] == ["llm"]
    for name in WORKERS:
        worker = services[name]
        command = _command(worker)
        assert "--no-migrate" in command, "the migrate service migrates"
        # `--scale worker=N`: nothing that only one container can have.
        assert "ports" not in worker and "container_name" not in worker, name
        grace = float(worker["environment"]["PROCESSGPT_SHUTDOWN_GRACE"])
        needed = worker_stop_seconds(grace, len(agents_of(command)))
        assert duration_seconds(worker["stop_grace_period"]) >= needed, (name, needed)
        assert worker["environment"]["PROCESSGPT_CONCURRENCY"] == "10"
