"""Which MCP servers a task may use: the operator's ``mcp.json`` and the tenant's entries.

The rule: **commands come from files on the worker host, never from the database.** The
operator's file (``PROCESSGPT_MCP_CONFIG``) is trusted; everything read from the database
(``tenants.mcp`` and the tenant's ``mcp_servers`` rows, merged by the claim) is tenant input,
from which a worker accepts only HTTP servers (reached through the network guard) and
references to the operator's catalog. The API refuses the rest before storing it
(:mod:`processgpt.api.routes.mcp_servers`); the worker refuses it again here, whoever wrote
the row::

    {"mcpServers": {                              # every tenant's tasks may use these
        "files":  {"command": "npx", "args": ["-y", "@mcp/files"], "env": {"TOKEN": "…"}},
        "search": {"url": "http://10.0.0.5/mcp", "headers": {"Authorization": "…"}}},
     "tenantCatalog": {                           # stdio servers tenants may switch on
        "github": {"command": "github-mcp", "args": ["stdio"], "env": {"LOG": "warn"},
                   "tenantEnv": ["GITHUB_TOKEN"], "tenants": ["*"],
                   "description": "GitHub issues and pull requests"}}}

A tenant enables a catalog entry with ``{"catalog": "github", "env": {"GITHUB_TOKEN": …}}``:
the server runs the operator's command with the operator's ``env`` plus the tenant's values
for the names in ``tenantEnv`` (no other name). A listed name must look like a credential or
an account setting, unless the entry also lists it in ``unsafeTenantEnv``; names that change
how programs load, run or connect (``PATH``, ``LD_PRELOAD``, ``NODE_OPTIONS``…) are never
accepted from tenants (:mod:`processgpt.tools.tenant_env`). ``tenants`` lists the tenant ids
it is offered to (``"*"``: all, the default).

Connections are per tenant: two tenants enabling the same catalog entry, or naming the same
HTTP server, get a process or a session each, so a server that keeps state between calls never
shows one tenant's state to another. The operator's ``mcpServers`` entries are per tenant too,
unless the entry says ``"shared": true`` (one connection for all tenants: only for servers that
keep nothing per caller).

A stdio server's environment is exactly its configured ``env`` plus what the ``mcp`` library
passes to every server: ``HOME``, ``LOGNAME``, ``PATH``, ``SHELL``, ``TERM`` and ``USER`` of
the worker (so ``npx``/``uvx`` are found). Nothing else of the worker's environment
(``DATABASE_URL``, ``PROCESSGPT_*``, model keys) reaches it.

Secrets (``env`` and ``headers`` values) never appear in logs, errors or ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from processgpt.db.mcp_servers import (
    ENV_NAME_PATTERN,
    header_name_problem,
    open_entry,
    shown_url,
)
from processgpt.db.secret_box import SecretBox
from processgpt.domain.errors import (
    InvalidInput,
    ProcessGPTError,
    UnknownMcpCatalogEntry,
    UrlNotAllowed,
)
from processgpt.tools import tenant_env
from processgpt.tools.netguard import REFUSED_INTERNAL, InternalAddressRefused, NetworkPolicy

log = logging.getLogger(__name__)

STDIO_REFUSED = "stdio servers (commands) come only from the operator's configuration"


@dataclass(frozen=True, repr=False)
class McpServerConfig:
    """One server to connect to. ``env`` and ``headers`` are secrets: never logged or shown."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    guarded: bool = False
    """Connect through the network guard: the URL comes from a tenant."""
    origin: str = "operator"
    """``"operator"`` (mcp.json), ``"tenant"`` (a tenant's HTTP server) or ``"catalog:<entry>"``."""
    tenant_id: str | None = None
    """The tenant whose connection this is: part of :attr:`key`, so no two tenants share a
    process or a session. None only for an operator entry marked ``"shared": true``."""
    shared: bool = False
    """An operator ``mcpServers`` entry with ``"shared": true``: one connection for every
    tenant (only for servers that keep no per-caller state)."""

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    @property
    def key(self) -> str:
        """A hash of everything that defines the connection (not the name) and of the tenant
        it is for: equal configs of one tenant share a connection; any change, or another
        tenant, makes a new one."""
        canonical = json.dumps(
            {
                "tenant": self.tenant_id,
                "command": self.command,
                "args": list(self.args),
                "env": dict(sorted(self.env.items())),
                "cwd": self.cwd,
                "url": self.url,
                "headers": dict(sorted(self.headers.items())),
                "guarded": self.guarded,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def describe(self) -> str:
        """A log-safe description: the server name and where it runs, no secrets."""
        where = self.command if self.command else url_without_secrets(self.url or "")
        return f"{self.name} ({self.transport}: {where})"

    def __repr__(self) -> str:
        return f"McpServerConfig({self.describe()})"


@dataclass(frozen=True)
class CatalogEntry:
    """A stdio server of the operator that tenants may switch on (``tenantCatalog``)."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    tenant_env: frozenset[str] = frozenset()
    """Env names a tenant may give values for (already checked by :mod:`tenant_env`)."""
    unsafe_tenant_env: frozenset[str] = frozenset()
    """Names the operator allows although they do not look like credentials."""
    tenants: frozenset[str] = frozenset({"*"})
    description: str = ""

    def offered_to(self, tenant_id: str) -> bool:
        return "*" in self.tenants or tenant_id in self.tenants

    def server(self, name: str, values: Mapping[str, str], tenant_id: str) -> McpServerConfig:
        """The server a tenant's reference starts (``values``: the tenant's env values, names
        checked by :meth:`OperatorConfig.check_reference`), a process of that tenant's own."""
        return McpServerConfig(
            name=name,
            command=self.command,
            args=self.args,
            env={**self.env, **values},
            cwd=self.cwd,
            origin=f"catalog:{self.name}",
            tenant_id=tenant_id,
        )


@dataclass(frozen=True)
class OperatorConfig:
    """The operator's ``mcp.json``: servers for every task, and the tenant catalog."""

    servers: Mapping[str, McpServerConfig] = field(default_factory=dict)
    catalog: Mapping[str, CatalogEntry] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path | None) -> OperatorConfig:
        """The file at ``path`` (None or empty: no file). It is read on every call, so an
        edit applies to the next task; an unreadable file is logged and counts as empty."""
        if not path:
            return cls()
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("cannot read mcp config path=%s error=%s", path, type(exc).__name__)
            return cls()
        return cls.parse(document, source="file")

    @classmethod
    def parse(cls, document: Any, *, source: str = "file") -> OperatorConfig:
        if not isinstance(document, Mapping):
            log.warning("mcp config is not an object source=%s", source)
            return cls()
        return cls(
            servers=parse_servers(document, source=source),
            catalog=_parse_catalog(document.get("tenantCatalog"), source),
        )

    def catalog_for(self, tenant_id: str) -> dict[str, CatalogEntry]:
        """The catalog entries offered to ``tenant_id``."""
        return {n: e for n, e in self.catalog.items() if e.offered_to(tenant_id)}

    def check_reference(self, tenant_id: str, catalog: str, env_names: set[str]) -> CatalogEntry:
        """The entry a tenant may reference with these env names, or a 422:
        ``unknown_mcp_catalog_entry``, or ``invalid_input`` naming the env names refused."""
        entry = self.catalog_for(tenant_id).get(catalog)
        if entry is None:
            raise UnknownMcpCatalogEntry(
                f"the operator's MCP catalog has no entry {catalog!r} for this tenant",
                field="catalog",
            )
        refused = sorted(
            name
            for name in env_names
            if name not in entry.tenant_env
            or tenant_env.refusal(name, entry.unsafe_tenant_env) is not None
        )
        if refused:
            allowed = ", ".join(sorted(entry.tenant_env)) or "none"
            raise InvalidInput(
                f"catalog entry {catalog!r} takes no env {', '.join(refused)} "
                f"(it takes: {allowed})",
                field="env",
            )
        return entry


@dataclass
class ServerPlan:
    """The servers a task may use, and the entries refused (name → why, no secrets)."""

    servers: list[McpServerConfig] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def plan_for_task(
    tenant_config: Any,
    *,
    tenant_id: str,
    operator: OperatorConfig,
    box: SecretBox,
    policy: NetworkPolicy,
) -> ServerPlan:
    """The operator's servers merged with the tenant's entries (the tenant's win on equal
    names; a refused tenant entry also hides the operator's of the same name). Every server
    is the tenant's own connection (:attr:`McpServerConfig.tenant_id`) except operator
    entries marked ``"shared": true``."""
    tenant = tenant_plan(
        tenant_config, tenant_id=tenant_id, operator=operator, box=box, policy=policy
    )
    servers = {
        name: server if server.shared else replace(server, tenant_id=tenant_id)
        for name, server in operator.servers.items()
        if name not in tenant.refused
    }
    servers.update({server.name: server for server in tenant.servers})
    return ServerPlan(list(servers.values()), tenant.refused)


def tenant_plan(
    tenant_config: Any,
    *,
    tenant_id: str,
    operator: OperatorConfig,
    box: SecretBox,
    policy: NetworkPolicy,
) -> ServerPlan:
    """The tenant's entries (``{"mcpServers": {...}}`` from the database) that may run:
    HTTP servers whose URL the policy does not refuse, and catalog references."""
    plan = ServerPlan()
    entries = tenant_config.get("mcpServers") if isinstance(tenant_config, Mapping) else None
    if not isinstance(entries, Mapping):
        return plan
    for raw_name, entry in entries.items():
        name = str(raw_name)
        if not isinstance(entry, Mapping) or entry.get("disabled") or entry.get("enabled") is False:
            continue
        try:
            plan.servers.append(
                tenant_server(name, entry, tenant_id, operator=operator, box=box, policy=policy)
            )
        except ProcessGPTError as exc:
            plan.refused[name] = exc.message
            log.warning(
                "mcp tenant server refused tenant=%s server=%s code=%s",
                tenant_id,
                name,
                exc.code,
            )
    return plan


def tenant_server(
    name: str,
    entry: Mapping[str, Any],
    tenant_id: str,
    *,
    operator: OperatorConfig,
    box: SecretBox,
    policy: NetworkPolicy,
) -> McpServerConfig:
    """The server a tenant's entry (as stored: secrets sealed) names, opened and checked, or
    :class:`~processgpt.domain.errors.ProcessGPTError` saying why it may not run."""
    if any(key in entry for key in ("command", "args", "cwd")):
        raise InvalidInput(STDIO_REFUSED)
    opened = open_entry(entry, box)
    if isinstance(opened.get("catalog"), str):
        env = _string_map(opened.get("env"), "env")
        for key, value in env.items():
            if not ENV_NAME_PATTERN.match(key) or "\x00" in value:
                raise InvalidInput("env names must be identifiers and values may not hold NUL")
        catalog_entry = operator.check_reference(tenant_id, opened["catalog"], set(env))
        return catalog_entry.server(name, env, tenant_id)
    url = opened.get("url")
    if isinstance(url, str) and url:
        try:
            policy.check_url(url)
        except InternalAddressRefused as refused:
            # The kind of address goes to the worker's log; the tenant's event says refused.
            log.warning(
                "mcp tenant url refused tenant=%s server=%s reason=%s",
                tenant_id,
                name,
                refused.message,
            )
            raise UrlNotAllowed(REFUSED_INTERNAL, field="url") from None
        headers = _string_map(opened.get("headers"), "headers")
        for header in headers:
            header_name_problem(header)
        return McpServerConfig(
            name=name,
            url=url,
            headers=headers,
            guarded=True,
            origin="tenant",
            tenant_id=tenant_id,
        )
    raise InvalidInput("the entry has neither a url nor a catalog entry name")


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput(f"{what} must be an object of strings")
    return {str(k): v for k, v in value.items()}


# -- the operator's file -----------------------------------------------------------------------


def parse_servers(config: Any, *, source: str) -> dict[str, McpServerConfig]:
    """The servers of an ``{"mcpServers": {...}}`` document of the operator. Malformed
    entries are skipped with a warning naming the entry (never its values)."""
    if not config:
        return {}
    servers = config.get("mcpServers") if isinstance(config, Mapping) else None
    if servers is None and isinstance(config, Mapping) and "tenantCatalog" in config:
        return {}
    if not isinstance(servers, Mapping):
        log.warning("mcp config has no mcpServers object source=%s", source)
        return {}
    parsed: dict[str, McpServerConfig] = {}
    for name, entry in servers.items():
        server = _parse_entry(str(name), entry, source)
        if server is not None:
            parsed[server.name] = server
    return parsed


def _parse_entry(name: str, entry: Any, source: str) -> McpServerConfig | None:
    if not isinstance(entry, Mapping):
        log.warning("mcp server entry is not an object source=%s server=%s", source, name)
        return None
    if entry.get("disabled") or entry.get("enabled") is False:
        return None
    problem = _entry_problem(entry)
    if problem:
        log.warning("mcp server entry skipped: %s source=%s server=%s", problem, source, name)
        return None
    if entry.get("command"):
        return McpServerConfig(
            name=name,
            command=entry["command"],
            args=tuple(str(a) for a in entry.get("args") or []),
            env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
            cwd=str(entry["cwd"]) if entry.get("cwd") else None,
            shared=entry.get("shared") is True,
        )
    return McpServerConfig(
        name=name,
        url=entry["url"],
        headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
        shared=entry.get("shared") is True,
    )


def _entry_problem(entry: Mapping[str, Any]) -> str | None:
    """Why an entry cannot be used (never quoting its values), or None."""
    args = entry.get("args") or []
    if not isinstance(entry.get("env") or {}, Mapping) or not isinstance(
        entry.get("headers") or {}, Mapping
    ):
        return "env and headers must be objects"
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        return "args must be a list of strings"
    if str(entry.get("type") or entry.get("transport") or "").lower() == "sse":
        return "the sse transport is not supported (use streamable HTTP)"
    command, url = entry.get("command"), entry.get("url")
    if isinstance(command, str) and command:
        return None
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return None
    return "it has neither a command nor an http(s) url"


def _parse_catalog(section: Any, source: str) -> dict[str, CatalogEntry]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        log.warning("mcp tenantCatalog is not an object source=%s", source)
        return {}
    catalog: dict[str, CatalogEntry] = {}
    for raw_name, entry in section.items():
        name = str(raw_name)
        server = _parse_entry(name, entry, source)
        if server is None or server.command is None:
            if server is not None:
                log.warning(
                    "mcp catalog entry skipped: not a command source=%s entry=%s", source, name
                )
            continue
        assert isinstance(entry, Mapping)
        opted_in = _names(entry.get("unsafeTenantEnv"))
        names = _names(entry.get("tenantEnv")) | opted_in
        accepted, refused = tenant_env.split(
            (n for n in names if ENV_NAME_PATTERN.match(n)), opted_in
        )
        refused.update({n: "not a variable name" for n in names if not ENV_NAME_PATTERN.match(n)})
        for env_name, why in sorted(refused.items()):
            log.warning(
                "mcp catalog tenantEnv name refused (tenants may not set it: %s) entry=%s name=%s",
                why,
                name,
                env_name[:128],
            )
        tenants = entry.get("tenants", ["*"])
        offered = frozenset(str(t) for t in tenants) if isinstance(tenants, list) else frozenset()
        catalog[name] = CatalogEntry(
            name=name,
            command=server.command,
            args=server.args,
            env=server.env,
            cwd=server.cwd,
            tenant_env=frozenset(accepted),
            unsafe_tenant_env=frozenset(opted_in & accepted),
            tenants=offered,
            description=str(entry.get("description") or "")[:500],
        )
    return catalog


def _names(value: Any) -> set[str]:
    return {n for n in value if isinstance(n, str)} if isinstance(value, list) else set()


def url_without_secrets(url: str) -> str:
    """``scheme://host[:port]`` only (see :func:`~processgpt.db.mcp_servers.shown_url`)."""
    return shown_url(url)
