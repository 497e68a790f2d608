"""A tenant's MCP servers (``mcp_servers``), their secrets sealed at rest.

A tenant may add two kinds of server, never a command (commands on worker hosts are the
operator's alone, see :mod:`processgpt.tools.mcp_config`):

* ``http``: ``{"url", "headers"}``, a streamable HTTP server. Stored as ``{"url":
  <scheme://host[:port] only>, "url_secret": <the whole URL, sealed>, "headers": {name:
  <sealed value>}}`` (rows written before kept more of the URL in ``url`` and no
  ``url_secret`` when it had no credentials: :func:`rotate_secrets` seals them).
* ``catalog``: ``{"catalog": <entry of the operator's tenantCatalog>, "env": {...}}``, a stdio
  server the operator describes and the tenant switches on with its own values for the env
  names the entry lists. Stored as ``{"catalog", "env": {name: <sealed value>}}``.

Rows with transport ``stdio`` are what tenants could add before (migration 0014 disabled
them, 0016 dropped their arguments, environment and working directory); they can be listed and
deleted, never enabled.

Sealing (:class:`~processgpt.db.secret_box.SecretBox`): header and env values and whole
URLs are encrypted when written; :func:`open_entry` gives a worker the plaintext;
:func:`rotate_secrets` re-encrypts every stored value with the first key (and encrypts values
still in plaintext, in ``mcp_servers`` and in ``tenants.mcp``). This module never logs a
config's values; the API shows names and masks values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from processgpt.db.database import Database
from processgpt.db.secret_box import SecretBox
from processgpt.db.sql import QUERIES
from processgpt.domain.errors import (
    InvalidInput,
    McpServerNotFound,
    NameTaken,
    StdioNotAllowed,
    TooManyMcpServers,
)

MCP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
FORBIDDEN_HEADERS = re.compile(
    r"^(?:host|connection|content-length|transfer-encoding|te|upgrade|trailer|keep-alive|"
    r"expect|proxy-[!#$%&'*+.^_`|~0-9a-z-]*|forwarded|via|x-forwarded-[!#$%&'*+.^_`|~0-9a-z-]*|"
    r"x-real-ip)$",
    re.IGNORECASE,
)
"""Header names a tenant may not set: ``Host`` (it would reach other virtual hosts behind an
allowed address), the headers that frame or route a message (``Connection``,
``Content-Length``, ``Transfer-Encoding``, ``TE``, ``Upgrade``, ``Trailer``, ``Keep-Alive``,
``Expect``, ``Proxy-*``), and those that claim where a request comes from (``Forwarded``,
``Via``, ``X-Forwarded-*``, ``X-Real-IP``: an ingress may trust the worker's address)."""
_MAX_VALUE = 16_000
_MAX_ENTRIES = 200

STDIO_REFUSED = (
    "stdio servers (commands run on worker hosts) come only from the operator's configuration; "
    'enable an entry of the operator\'s MCP catalog with {"catalog": <entry>} instead'
)


def _no_control(value: str, what: str, *, allowed: str = "") -> str:
    if len(value) > _MAX_VALUE:
        raise ValueError(f"{what} must be at most {_MAX_VALUE} characters")
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value):
        shown = "NUL or control characters" if allowed else "NUL, line breaks or control characters"
        raise ValueError(f"{what} may not contain {shown}")
    return value


def header_name_problem(name: str, *, raise_as: type[Exception] = InvalidInput) -> None:
    """Raise ``raise_as`` when a tenant may not send a header of this name (not an HTTP
    token, or one of :data:`FORBIDDEN_HEADERS`)."""
    if not _HEADER_NAME.match(name):
        raise raise_as("header names must be HTTP tokens")
    if FORBIDDEN_HEADERS.match(name):
        raise raise_as(
            f"the header {name!r} may not be set (Host, hop-by-hop, framing, Proxy-* and "
            "forwarding headers are the HTTP client's)"
        )


class McpServerSpec(BaseModel):
    """A server a tenant adds: ``url`` (+ ``headers``) for streamable HTTP, or ``catalog``
    (+ ``env``) for an entry of the operator's catalog. ``transport`` is inferred when absent.

    ``command``, ``args`` and ``cwd`` are accepted by the schema only to be refused with
    ``stdio_not_allowed`` (:attr:`names_a_command`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "search",
                    "url": "https://mcp.example.com/mcp",
                    "headers": {"Authorization": "Bearer <token>"},
                },
                {"name": "gh", "catalog": "github", "env": {"GITHUB_TOKEN": "<token>"}},
            ]
        },
    )

    name: str
    transport: Literal["http", "catalog", "stdio"] | None = None
    url: str | None = Field(default=None, max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict, max_length=_MAX_ENTRIES)
    catalog: str | None = Field(default=None, max_length=64)
    env: dict[str, str] = Field(default_factory=dict, max_length=_MAX_ENTRIES)
    enabled: bool = True
    command: str | None = Field(default=None, description="Refused: `stdio_not_allowed`.")
    args: list[str] | None = Field(default=None, description="Refused: `stdio_not_allowed`.")
    cwd: str | None = Field(default=None, description="Refused: `stdio_not_allowed`.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not MCP_NAME_PATTERN.match(value):
            raise ValueError("name must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
        return value

    @field_validator("catalog")
    @classmethod
    def _catalog(cls, value: str | None) -> str | None:
        if value is not None and not MCP_NAME_PATTERN.match(value):
            raise ValueError("catalog must be the name of an entry of the operator's catalog")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not ENV_NAME_PATTERN.match(key):
                raise ValueError("env names must be letters, digits and '_' (not first a digit)")
            _no_control(item, "env values", allowed="\t\r\n")  # PEM keys have line breaks
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            header_name_problem(key, raise_as=ValueError)
            _no_control(item, "header values", allowed="\t")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _no_control(value, "url")
        if " " in value or not value.lower().startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        try:
            host = urlsplit(value).hostname
        except ValueError:
            raise ValueError("url is not a valid URL") from None
        if not host:
            raise ValueError("url must name a host")
        return value

    @property
    def names_a_command(self) -> bool:
        """Whether the body asks for a command to be run (always refused)."""
        return (
            self.command is not None
            or self.args is not None
            or self.cwd is not None
            or self.transport == "stdio"
        )

    @model_validator(mode="after")
    def _shape(self) -> McpServerSpec:
        if self.names_a_command:
            return self  # refused with its own code by the repository / the route
        if bool(self.url) == bool(self.catalog):
            raise ValueError("give either a url (http) or a catalog entry name (catalog)")
        transport: Literal["http", "catalog"] = "http" if self.url else "catalog"
        if self.transport is not None and self.transport != transport:
            raise ValueError(f"transport {self.transport!r} does not match the entry")
        self.transport = transport
        if transport == "catalog" and self.headers:
            raise ValueError("headers are for http servers")
        if transport == "http" and self.env:
            raise ValueError("env is for catalog servers")
        return self

    def entry(self) -> dict[str, Any]:
        """The ``mcp.json``-shaped entry, in plaintext (seal it before storing)."""
        if self.catalog:
            return {"catalog": self.catalog, "env": dict(self.env)}
        return {"url": self.url, "headers": dict(self.headers)}


# -- sealing -------------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """What of a URL may be stored in the clear, shown and logged: ``scheme://host[:port]``.
    Nothing of its userinfo, path, query or fragment: services put keys in any of them,
    the path's first segment included (``https://mcp.example.com/<key>/v2/mcp``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


def _seal_values(values: Any, seal: Callable[[str], str]) -> Any:
    if not isinstance(values, Mapping):
        return values
    return {str(k): seal(v) if isinstance(v, str) else v for k, v in values.items()}


def seal_entry(entry: Mapping[str, Any], box: SecretBox, *, rotate: bool = False) -> dict[str, Any]:
    """``entry`` as stored: env and header values sealed, a URL split into what may be shown
    (``url``, :func:`shown_url`) and the sealed whole (``url_secret``).

    ``rotate=False`` seals every value as given (a value that looks sealed is sealed again, so
    a tenant cannot smuggle in a token); ``rotate=True`` re-encrypts sealed values with the
    first key and seals plaintext ones (for entries already stored)."""
    seal = box.rotate if rotate else box.seal
    sealed = dict(entry)
    for field in ("env", "headers"):
        if field in sealed:
            sealed[field] = _seal_values(sealed[field], seal)
    if isinstance(sealed.get("url_secret"), str):
        sealed["url_secret"] = seal(sealed["url_secret"])
        if isinstance(sealed.get("url"), str):
            sealed["url"] = shown_url(sealed["url"])  # rows that kept the path in the clear
    elif isinstance(sealed.get("url"), str):
        sealed["url_secret"] = box.seal(sealed["url"])
        sealed["url"] = shown_url(sealed["url"])
    return sealed


def without_command_details(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A command entry (which never runs) without its arguments, environment and working
    directory (they often hold tokens in plaintext); any other entry as it is."""
    if "command" not in entry:
        return dict(entry)
    return {k: v for k, v in entry.items() if k not in ("args", "env", "cwd")}


def open_entry(entry: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """The plaintext of a stored entry: values opened, ``url`` the whole URL again. Raises
    :class:`~processgpt.domain.errors.SecretsUnavailable` when a value cannot be opened."""
    opened = dict(entry)
    for field in ("env", "headers"):
        if field in opened:
            opened[field] = _seal_values(opened[field], box.open)
    secret = opened.pop("url_secret", None)
    if isinstance(secret, str):
        opened["url"] = box.open(secret)
    return opened


# -- the repository --------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    servers: int
    """``mcp_servers`` rows rewritten."""
    tenants: int
    """``tenants.mcp`` configurations rewritten."""


class McpServerRepository:
    """The tenant's MCP server rows. Every method is scoped to one tenant."""

    def __init__(self, db: Database, box: SecretBox, *, max_servers: int = 20) -> None:
        """``max_servers``: servers a tenant may have (PROCESSGPT_MCP_MAX_SERVERS_PER_TENANT)."""
        self.db = db
        self.box = box
        self.max_servers = max_servers

    async def add(self, tenant_id: str, spec: McpServerSpec) -> dict[str, Any]:
        """Insert a server (secrets sealed). Raises ``stdio_not_allowed`` for a command,
        ``name_taken`` when the tenant has a server of that name, ``too_many_mcp_servers``
        when it has :attr:`max_servers` already (checked by the inserting statement, with
        the tenant's adds serialised, so concurrent adds cannot pass it)."""
        if spec.names_a_command:
            raise StdioNotAllowed(STDIO_REFUSED, field="command")
        config = seal_entry(spec.entry(), self.box)
        try:
            async with self.db.transaction() as conn:
                await conn.execute(QUERIES["lock_tenant_mcp_servers"], tenant_id)
                row = await conn.fetchrow(
                    QUERIES["insert_mcp_server"],
                    tenant_id,
                    spec.name,
                    spec.transport,
                    config,
                    spec.enabled,
                    self.max_servers,
                )
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise InvalidInput(f"tenant {tenant_id!r} does not exist", field="tenant_id") from None
        except (asyncpg.exceptions.CheckViolationError, asyncpg.exceptions.DataError) as exc:
            # The constraint's kind only: never the row's values (they hold secrets).
            raise InvalidInput(f"refused by the schema: {exc.__class__.__name__}") from None
        assert row is not None
        if row["name"] is None:
            if row["taken"]:
                raise NameTaken(f"an MCP server named {spec.name!r} already exists")
            raise TooManyMcpServers(
                f"the tenant has {self.max_servers} MCP servers, as many as it may: remove one "
                "first (the operator sets the limit: PROCESSGPT_MCP_MAX_SERVERS_PER_TENANT)"
            )
        added = dict(row)
        del added["has_room"], added["taken"]
        return added

    async def list_servers(self, tenant_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.db.fetch(QUERIES["list_mcp_servers"], tenant_id)]

    async def get(self, tenant_id: str, name: str) -> dict[str, Any]:
        row = await self.db.fetchrow(QUERIES["get_mcp_server"], tenant_id, name)
        if row is None:
            raise McpServerNotFound(name)
        return dict(row)

    async def set_enabled(self, tenant_id: str, name: str, enabled: bool) -> dict[str, Any]:
        """Switch a server on or off. A stdio row (from before migration 0014) cannot be
        switched on: ``stdio_not_allowed``."""
        try:
            row = await self.db.fetchrow(
                QUERIES["set_mcp_server_enabled"], tenant_id, name, enabled
            )
        except asyncpg.exceptions.CheckViolationError:
            raise StdioNotAllowed(STDIO_REFUSED) from None
        if row is None:
            raise McpServerNotFound(name)
        return dict(row)

    async def delete(self, tenant_id: str, name: str) -> None:
        if await self.db.fetchrow(QUERIES["delete_mcp_server"], tenant_id, name) is None:
            raise McpServerNotFound(name)


async def rotate_secrets(db: Database, box: SecretBox) -> RotationReport:
    """Re-encrypt every stored MCP secret with the box's first key, encrypt the values
    still in plaintext, and drop what command entries (which never run) still hold
    (:func:`without_command_details`): ``mcp_servers`` rows and ``tenants.mcp`` entries, in
    one transaction (rows locked, so a concurrent write waits). Raises
    ``secrets_unavailable`` (nothing changed) when a value was sealed with a key the box does
    not have."""
    servers = tenants = 0
    async with db.transaction() as conn:
        for row in await conn.fetch(QUERIES["lock_mcp_server_configs"]):
            config = row["config"]
            rotated = seal_entry(without_command_details(config), box, rotate=True)
            if rotated != config:
                await conn.execute(
                    QUERIES["update_mcp_server_config"], row["tenant_id"], row["name"], rotated
                )
                servers += 1
        for row in await conn.fetch(QUERIES["lock_tenant_mcp"]):
            mcp = row["mcp"]
            entries = mcp.get("mcpServers") if isinstance(mcp, Mapping) else None
            if not isinstance(entries, Mapping):
                continue
            rotated_entries = {
                name: seal_entry(without_command_details(entry), box, rotate=True)
                if isinstance(entry, Mapping)
                else entry
                for name, entry in entries.items()
            }
            if rotated_entries != entries:
                await conn.execute(
                    QUERIES["update_tenant_mcp"], row["id"], {**mcp, "mcpServers": rotated_entries}
                )
                tenants += 1
    return RotationReport(servers=servers, tenants=tenants)
