"""Configuration from the environment (``PROCESSGPT_*``, plus ``DATABASE_URL``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting, its environment variable and default. See the README's table."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "PROCESSGPT_DATABASE_URL")
    )
    data_dir: Path | None = None
    concurrency: int = Field(default=10, ge=1, le=10_000)
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)
    flush_interval: float = Field(default=0.002, ge=0)
    retry_base_delay: float = Field(default=1.0, gt=0)
    retry_max_delay: float = Field(default=300.0, gt=0)
    pool_size: int = Field(default=10, ge=2, le=200)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_keep_alive: int = Field(default=75, ge=1)
    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    max_pending_tasks: int = Field(default=10_000, ge=1)
    sse_heartbeat: float = Field(default=15.0, gt=0)
    log_level: str = "INFO"
    log_format: str = Field(default="text", pattern="^(text|json)$")


class McpSettings(BaseSettings):
    """MCP servers: the operator's ``mcp.json`` and what tenants' HTTP servers may reach.

    ``allow_private_networks``: tenants' HTTP servers may be on loopback, private (RFC 1918,
    fc00::/7) and shared (100.64/10) addresses; link-local (169.254/16, fe80::/10: cloud
    metadata) stays refused unless listed in ``allowed_networks``. ``allowed_networks``:
    comma-separated CIDRs, addresses or host names tenants' servers may reach whatever they
    resolve to."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_MCP_", extra="ignore")

    config: Path | None = None
    tool_timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=20.0, gt=0)
    allow_private_networks: bool = False
    allowed_networks: str = ""


class DelegateSettings(BaseSettings):
    """The ``delegate`` tool: how long it waits, and which remote A2A agents it may call
    (``urls``: comma-separated URL prefixes; empty: none). ``token`` is sent to them as a
    bearer token."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_DELEGATE_", extra="ignore")

    timeout: float = Field(default=300.0, gt=0)
    urls: str = ""
    token: SecretStr | None = None


class SecretSettings(BaseSettings):
    """The keys that encrypt stored secrets (MCP headers, env values, URL credentials).

    ``keys``: comma-separated Fernet keys, the first encrypts and all decrypt
    (``PROCESSGPT_SECRET_KEYS``). Unset: ``<data dir>/secret.key`` (one key a line, created
    with mode 0600 on first use). Every API and worker process must have the same keys."""

    model_config = SettingsConfigDict(env_prefix="PROCESSGPT_SECRET_", extra="ignore")

    keys: SecretStr | None = None
    data_dir: Path | None = Field(default=None, validation_alias="PROCESSGPT_DATA_DIR")
