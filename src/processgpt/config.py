"""Configuration from the environment (``PROCESSGPT_*``, plus ``DATABASE_URL``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
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
