-- Tenants may no longer run commands on worker hosts.
--
-- Stdio MCP servers (a command the worker spawns) come only from the operator's configuration:
-- its mcp.json, or an entry of its "tenantCatalog" that a tenant enables by name. Through the
-- API a tenant adds HTTP servers (checked against private, loopback and link-local addresses)
-- and catalog references: transport 'catalog', config {"catalog": <entry>, "env": {...}}.
--
-- What this migration does to existing data:
-- * mcp_servers rows with transport 'stdio' (a tenant's command) are disabled, and a stdio row
--   can never be enabled again (CHECK). They stay visible to the tenant (command shown, args
--   and env masked) so its admin can delete them or ask the operator for a catalog entry.
-- * tenants.mcp entries with a "command" get "disabled": true (workers refuse them anyway).
-- * Secret values are not touched here (SQL has no key): `processgpt secrets rotate` encrypts
--   the values still stored in plaintext; until then workers read them as they are.

UPDATE mcp_servers SET enabled = false, updated_at = now()
WHERE transport = 'stdio' AND enabled;

UPDATE tenants t
SET mcp = jsonb_set(t.mcp, '{mcpServers}', (
    SELECT jsonb_object_agg(
        e.name,
        CASE WHEN jsonb_typeof(e.entry) = 'object' AND e.entry ? 'command'
             THEN e.entry || '{"disabled": true}'::jsonb ELSE e.entry END)
    FROM jsonb_each(t.mcp -> 'mcpServers') AS e(name, entry)))
WHERE jsonb_typeof(t.mcp -> 'mcpServers') = 'object'
  AND EXISTS (SELECT 1 FROM jsonb_each(t.mcp -> 'mcpServers') AS e(name, entry)
              WHERE jsonb_typeof(e.entry) = 'object' AND e.entry ? 'command');

ALTER TABLE mcp_servers
    DROP CONSTRAINT mcp_servers_transport_check,
    ADD CONSTRAINT mcp_servers_transport_check
        CHECK (transport IN ('stdio', 'http', 'catalog')),
    DROP CONSTRAINT mcp_servers_check,
    ADD CONSTRAINT mcp_servers_shape_check CHECK (CASE transport
        WHEN 'stdio' THEN jsonb_typeof(config -> 'command') = 'string' AND NOT config ? 'url'
        WHEN 'http' THEN jsonb_typeof(config -> 'url') = 'string' AND NOT config ? 'command'
                         AND NOT config ? 'catalog' AND config ->> 'url' ~ '^https?://'
        WHEN 'catalog' THEN jsonb_typeof(config -> 'catalog') = 'string'
                            AND NOT config ? 'command' AND NOT config ? 'url'
        END),
    -- A tenant's command never runs: the rows left from before stay switched off.
    ADD CONSTRAINT mcp_servers_stdio_disabled_check CHECK (transport <> 'stdio' OR NOT enabled);
