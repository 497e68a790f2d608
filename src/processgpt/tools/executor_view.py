"""What executors see of a tenant's MCP configuration (``extras["tenant_mcp"]``).

The built-in ``llm`` agent plans a task's servers itself, through
:class:`~processgpt.tools.mcp.McpConnections` (catalog, network guard, per-tenant
connections). Other executors (user executors, agents written for process-gpt-agent-sdk) get
``extras["tenant_mcp"]`` and often build MCP clients from it on their own, so they get only
what passed the policy, in the shape the SDK's users read::

    {"mcpServers": {"search": {"transport": "streamable_http",
                               "url": "https://mcp.example.com/mcp?key=…",
                               "headers": {"Authorization": "Bearer …"},
                               "tenant_supplied": true}}}

* only the tenant's enabled HTTP servers whose URL passes the guard's literal check
  (:meth:`~processgpt.tools.netguard.NetworkPolicy.check_url`) and whose headers a tenant may
  set; never an entry with a command, and no catalog reference (those run only through the
  built-in pool);
* the server's own credentials, opened (its whole URL and its header values: an executor
  that connects needs them), and no other secret (no catalog env values);
* ``tenant_supplied: true``: the URL comes from a tenant. Its host name has been checked only
  as written: connect through :func:`~processgpt.tools.netguard.guarded_http_client`, which
  checks every address at connect time, or the worker's internal network is reachable.

An entry that cannot be used (refused, or its secrets do not open) is left out and logged at
DEBUG with its name and why, never its values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processgpt.config import McpSettings, SecretSettings
from processgpt.db.secret_box import SecretBox
from processgpt.domain.errors import ProcessGPTError
from processgpt.tools.mcp_config import OperatorConfig, tenant_server
from processgpt.tools.netguard import NetworkPolicy

log = logging.getLogger(__name__)

_NO_OPERATOR = OperatorConfig()


@dataclass(frozen=True)
class ExecutorMcpView:
    """Builds ``extras["tenant_mcp"]`` from the tenant's configuration (see the module
    docstring). ``policy`` and ``box`` are the worker's, built by the composition root."""

    policy: NetworkPolicy
    box: SecretBox

    @classmethod
    def of(cls, settings: McpSettings, box: SecretBox) -> ExecutorMcpView:
        return cls(
            NetworkPolicy.parse(settings.allow_private_networks, settings.allowed_networks), box
        )

    @classmethod
    def from_environment(cls) -> ExecutorMcpView:
        """The view with the environment's settings and keys (for runners built without a
        composition root)."""
        secrets = SecretSettings()
        keys = secrets.keys.get_secret_value() if secrets.keys else None
        return cls.of(McpSettings(), SecretBox.configured(keys, secrets.data_dir))

    def __call__(self, tenant_config: Any, tenant_id: str) -> dict[str, Any]:
        entries = tenant_config.get("mcpServers") if isinstance(tenant_config, Mapping) else None
        servers: dict[str, Any] = {}
        if not isinstance(entries, Mapping):
            return {"mcpServers": servers}
        for raw_name, entry in entries.items():
            name = str(raw_name)
            if (
                not isinstance(entry, Mapping)
                or entry.get("disabled")
                or entry.get("enabled") is False
                or not isinstance(entry.get("url"), str)
            ):
                continue
            try:
                server = tenant_server(
                    name, entry, tenant_id, operator=_NO_OPERATOR, box=self.box, policy=self.policy
                )
            except ProcessGPTError as exc:
                log.debug(
                    "mcp server left out of the executor's view tenant=%s server=%s code=%s",
                    tenant_id,
                    name,
                    exc.code,
                )
                continue
            if server.command is not None or server.url is None:
                continue  # a catalog reference: it runs only through the built-in pool
            servers[name] = {
                "transport": "streamable_http",
                "url": server.url,
                "headers": dict(server.headers),
                "tenant_supplied": True,
            }
        return {"mcpServers": servers}
