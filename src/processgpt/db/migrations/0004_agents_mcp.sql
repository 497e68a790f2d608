-- Agent profiles and per-tenant MCP servers.
--
-- A profile is a named agent of a tenant (a model, instructions, a persona and the tools it may
-- use) run by an orchestrator: a task that names a profile is stored with the profile's
-- orchestrator in agent_orch and the profile name in todolist.agent_profile; the claim reads the
-- profile as it is then.
-- MCP servers of a tenant are merged into the tenant's MCP configuration at each claim, so a
-- change takes effect on the next task without restarting workers.

CREATE TABLE agents (
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    agent_orch    text NOT NULL CHECK (agent_orch ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    model         text CHECK (length(model) BETWEEN 1 AND 200),
    instructions  text CHECK (length(instructions) <= 100000),
    persona       text CHECK (length(persona) <= 100000),
    -- Allowed tool names (an MCP server name or a model-facing `<server>__<tool>`); empty: all.
    tools         text[] NOT NULL DEFAULT '{}'
                  CHECK (cardinality(tools) <= 200 AND array_position(tools, NULL) IS NULL),
    skills        text[] NOT NULL DEFAULT '{}'
                  CHECK (cardinality(skills) <= 200 AND array_position(skills, NULL) IS NULL),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name),
    CHECK (name <> agent_orch)
);

CREATE TABLE mcp_servers (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    transport   text NOT NULL CHECK (transport IN ('stdio', 'http')),
    -- The mcp.json entry: {command, args, env, cwd} (stdio) or {url, headers} (http).
    -- env and header values are secrets: the API returns their keys only.
    config      jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name),
    CHECK (CASE transport
           WHEN 'stdio' THEN jsonb_typeof(config -> 'command') = 'string' AND NOT config ? 'url'
           WHEN 'http' THEN jsonb_typeof(config -> 'url') = 'string' AND NOT config ? 'command'
                            AND config ->> 'url' ~ '^https?://'
           END),
    CHECK (jsonb_typeof(COALESCE(config -> 'env', '{}')) = 'object'),
    CHECK (jsonb_typeof(COALESCE(config -> 'headers', '{}')) = 'object'),
    CHECK (jsonb_typeof(COALESCE(config -> 'args', '[]')) = 'array')
);

-- The profile a task runs under (NULL: the orchestrator's defaults).
ALTER TABLE todolist ADD COLUMN agent_profile text
    CHECK (agent_profile ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$');
