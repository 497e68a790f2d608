"""Which servers a task may use: the operator's file is trusted, the tenant's entries (from the
database) are refused unless they are HTTP servers or catalog references; a stdio server gets
only the environment its configuration names (a real MCP server reports its environment)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from processgpt.config import McpSettings
from processgpt.db.secret_box import SecretBox, new_key
from processgpt.domain.errors import InvalidInput
from processgpt.tools.mcp import McpConnections
from processgpt.tools.mcp_config import OperatorConfig, plan_for_task, tenant_plan
from processgpt.tools.netguard import NetworkPolicy

MCP_SERVER = Path(__file__).resolve().parent.parent / "mcp_server.py"
OPERATOR = {
    "mcpServers": {"files": {"command": "files-mcp", "env": {"ROOT": "/srv"}}},
    "tenantCatalog": {
        "github": {
            "command": "github-mcp",
            "args": ["stdio"],
            "env": {"LOG": "warn"},
            "tenantEnv": ["GITHUB_TOKEN", "LD_PRELOAD", "PATH", "NODE_OPTIONS"],
        },
        "acme-only": {"command": "acme-mcp", "tenants": ["acme"]},
        "bad": {"url": "https://x.example/mcp"},  # catalog entries are commands
    },
}


def _plan(
    tenant: Any, tenant_id: str = "acme", operator: OperatorConfig | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    plan = plan_for_task(
        tenant,
        tenant_id=tenant_id,
        operator=operator or OperatorConfig.parse(OPERATOR),
        box=SecretBox([new_key()]),
        policy=NetworkPolicy(),
    )
    return {s.name: s for s in plan.servers}, plan.refused


def test_commands_from_the_database_never_run() -> None:
    servers, refused = _plan(
        {
            "mcpServers": {
                "sh": {"command": "/bin/sh", "args": ["-c", "touch /tmp/pwned"]},
                "py": {"command": "python3", "env": {"LD_PRELOAD": "/tmp/x.so"}},
                "args-only": {"args": ["-c", "id"]},
                "cwd-only": {"url": "https://ok.example/mcp", "cwd": "/"},
                "files": {"command": "/bin/sh"},  # a tenant entry shadowing the operator's
                "off": {"command": "/bin/sh", "disabled": True},
            }
        }
    )
    assert servers == {}  # the operator's "files" is hidden by the refused tenant entry
    assert set(refused) == {"sh", "py", "args-only", "cwd-only", "files"}
    assert all("operator's configuration" in why for why in refused.values())


def test_http_entries_are_checked_and_catalog_references_resolved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servers, refused = _plan(
        {
            "mcpServers": {
                "web": {"url": "https://mcp.example/mcp", "headers": {"A": "b"}},
                "local": {"url": "http://127.0.0.1:9000/mcp"},
                "meta": {"url": "http://169.254.169.254/latest/meta-data"},
                "gh": {"catalog": "github", "env": {"GITHUB_TOKEN": "t"}},
                "gh-path": {"catalog": "github", "env": {"PATH": "/tmp/evil"}},
                "gh-preload": {"catalog": "github", "env": {"LD_PRELOAD": "/tmp/x.so"}},
                "gh-nul": {"catalog": "github", "env": {"GITHUB_TOKEN": "a\x00b"}},
                "nope": {"catalog": "unknown"},
                "theirs": {"catalog": "acme-only"},
                "bad": {"catalog": "bad"},
                "empty": {"headers": {}},
            }
        }
    )
    assert set(servers) == {"files", "web", "gh", "theirs"}
    assert servers["web"].guarded and servers["web"].origin == "tenant"
    gh = servers["gh"]
    assert gh.command == "github-mcp" and gh.args == ("stdio",) and gh.origin == "catalog:github"
    assert dict(gh.env) == {"LOG": "warn", "GITHUB_TOKEN": "t"}
    # the tenant learns it was refused, the worker's log which kind of address it was
    assert refused["local"] == refused["meta"] == "refused: an internal address"
    assert "(loopback)" in caplog.text and "(link-local)" in caplog.text
    assert "PATH" in refused["gh-path"] and "LD_PRELOAD" in refused["gh-preload"]
    assert "NUL" in refused["gh-nul"]
    assert "no entry 'unknown'" in refused["nope"] and "no entry 'bad'" in refused["bad"]
    assert set(refused) == {
        "local",
        "meta",
        "gh-path",
        "gh-preload",
        "gh-nul",
        "nope",
        "bad",
        "empty",
    }
    # an entry offered to one tenant only
    _, other = _plan({"mcpServers": {"theirs": {"catalog": "acme-only"}}}, tenant_id="globex")
    assert "no entry 'acme-only'" in other["theirs"]


def test_the_catalog_never_offers_names_that_change_how_programs_load() -> None:
    entry = OperatorConfig.parse(OPERATOR).catalog["github"]
    assert entry.tenant_env == {"GITHUB_TOKEN"}
    assert "bad" not in OperatorConfig.parse(OPERATOR).catalog


REVIEWED_GAPS = [
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_CONFIG_FILE",
    "UV_PYTHON",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "BUN_CONFIG_REGISTRY",
    "YARN_NPM_REGISTRY_SERVER",
    "COREPACK_NPM_REGISTRY",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "NODE_EXTRA_CA_CERTS",
    "OPENSSL_CONF",
    "SSLKEYLOGFILE",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "PERL5DB",
    "DOTNET_STARTUP_HOOKS",
    "CORECLR_PROFILER",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "ELECTRON_RUN_AS_NODE",
    "PUPPETEER_EXECUTABLE_PATH",
    "GOFLAGS",
]
"""Names a review found accepted from tenants by the earlier denylist."""
NEVER_EVEN_OPTED_IN = (*REVIEWED_GAPS, "LD_PRELOAD", "PATH", "NODE_OPTIONS", "HTTPS_PROXY")
CREDENTIALS = (
    "GITHUB_TOKEN",
    "OPENAI_API_KEY",
    "API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "JIRA_USERNAME",
    "SLACK_TEAM_ID",
    "GOOGLE_CLOUD_PROJECT",
    "AZURE_CLIENT_ID",
)


def test_tenants_set_only_names_that_look_like_credentials() -> None:
    operator = OperatorConfig.parse(
        {
            "tenantCatalog": {
                "svc": {
                    "command": "svc-mcp",
                    "tenantEnv": [*CREDENTIALS, *NEVER_EVEN_OPTED_IN, "JIRA_URL", "DEBUG"],
                    "unsafeTenantEnv": ["JIRA_URL", *NEVER_EVEN_OPTED_IN],
                }
            }
        }
    )
    entry = operator.catalog["svc"]
    # when the file is read: only credentials, and what the operator opted into that is not
    # in a family that changes how programs load or connect
    assert entry.tenant_env == {*CREDENTIALS, "JIRA_URL"}
    # the API and the worker check each name again
    operator.check_reference("acme", "svc", {"GITHUB_TOKEN", "JIRA_URL"})
    for name in (*NEVER_EVEN_OPTED_IN, "DEBUG"):
        with pytest.raises(InvalidInput, match=name):
            operator.check_reference("acme", "svc", {name})
    # an entry built past the parser (or a future bug in it) is refused all the same
    forged = OperatorConfig(
        catalog={
            "svc": replace(entry, tenant_env=frozenset(NEVER_EVEN_OPTED_IN)),
            "plain": replace(entry, tenant_env=frozenset({"DEBUG"}), unsafe_tenant_env=frozenset()),
        }
    )
    for name in NEVER_EVEN_OPTED_IN:
        with pytest.raises(InvalidInput, match=name):
            forged.check_reference("acme", "svc", {name})
    with pytest.raises(InvalidInput, match="DEBUG"):
        forged.check_reference("acme", "plain", {"DEBUG"})
    servers, refused = _plan(
        {"mcpServers": {"gap": {"catalog": "svc", "env": {"GLIBC_TUNABLES": "x"}}}},
        operator=forged,
    )
    assert "gap" not in servers and "GLIBC_TUNABLES" in refused["gap"]


def test_tenants_may_not_set_host_framing_proxy_or_forwarding_headers() -> None:
    refused_names = ["Host", "HOST", "Transfer-Encoding", "TE", "Proxy-Connection", "Via"]
    entries = {
        f"h{i}": {"url": "https://mcp.example/mcp", "headers": {name: "x"}}
        for i, name in enumerate(refused_names)
    }
    entries["ok"] = {
        "url": "https://mcp.example/mcp",
        "headers": {"Authorization": "Bearer t", "X-Goog-Api-Key": "k", "Private-Token": "p"},
    }
    servers, refused = _plan({"mcpServers": entries})
    assert set(refused) == {f"h{i}" for i in range(len(refused_names))}
    assert "ok" in servers
    for i, name in enumerate(refused_names):
        assert f"{name!r} may not be set" in refused[f"h{i}"]


def test_an_unreadable_file_counts_as_empty(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    assert OperatorConfig.read(tmp_path / "broken.json") == OperatorConfig()
    assert OperatorConfig.read(tmp_path / "missing.json") == OperatorConfig()
    assert OperatorConfig.read(None) == OperatorConfig()


def test_tenant_plan_reads_only_the_tenant_entries() -> None:
    plan = tenant_plan(
        {"mcpServers": {"web": {"url": "https://w.example/mcp"}}},
        tenant_id="acme",
        operator=OperatorConfig.parse(OPERATOR),
        box=SecretBox([new_key()]),
        policy=NetworkPolicy(),
    )
    assert [s.name for s in plan.servers] == ["web"]


WORKER_SECRETS = {
    "DATABASE_URL": "postgresql://app:db-password-planted@db.internal/processgpt",
    "PROCESSGPT_LLM_API_KEY": "sk-planted-llm-key",
    "PROCESSGPT_JWT_SECRET": "planted-jwt-secret",
    "PROCESSGPT_SECRET_KEYS": new_key(),
    "AWS_SECRET_ACCESS_KEY": "planted-aws-secret",
}
MCP_LIBRARY_DEFAULTS = {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}
PYTHON_ADDS = {"LC_CTYPE"}  # the server's Python sets it itself (PEP 538 locale coercion)


async def test_a_stdio_server_gets_only_the_environment_its_configuration_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "env": {
                        "command": sys.executable,
                        "args": [str(MCP_SERVER)],
                        "env": {"CONFIGURED": "yes"},
                    }
                },
                "tenantCatalog": {
                    "cat": {
                        "command": sys.executable,
                        "args": [str(MCP_SERVER)],
                        "env": {"OPERATOR_SET": "1"},
                        "tenantEnv": ["TENANT_TOKEN"],
                    }
                },
            }
        )
    )
    pool = McpConnections(McpSettings(config=config), connect_timeout=20)
    try:
        plan = pool.plan(
            "acme",
            {"mcpServers": {"mine": {"catalog": "cat", "env": {"TENANT_TOKEN": "t-1"}}}},
        )
        assert not plan.refused
        toolset = await pool.toolset(plan.servers)
        seen = {}
        for server in ("env", "mine"):
            outcome = await pool.call(toolset.tools[f"{server}__environment"], {})
            assert outcome.error is None, outcome.error
            seen[server] = json.loads(outcome.text)
    finally:
        await pool.close()
    assert seen["env"]["CONFIGURED"] == "yes"
    assert set(seen["env"]) - MCP_LIBRARY_DEFAULTS - PYTHON_ADDS == {"CONFIGURED"}
    assert seen["mine"]["TENANT_TOKEN"] == "t-1" and seen["mine"]["OPERATOR_SET"] == "1"
    assert set(seen["mine"]) - MCP_LIBRARY_DEFAULTS - PYTHON_ADDS == {
        "OPERATOR_SET",
        "TENANT_TOKEN",
    }
    for environment in seen.values():
        text = json.dumps(environment)
        for name, value in WORKER_SECRETS.items():
            assert name not in environment and value not in text
