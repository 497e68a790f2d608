-- name: insert_mcp_server
INSERT INTO mcp_servers (tenant_id, name, transport, config, enabled)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, name) DO NOTHING
RETURNING *;

-- name: list_mcp_servers
SELECT * FROM mcp_servers WHERE tenant_id = $1 ORDER BY name;

-- name: get_mcp_server
SELECT * FROM mcp_servers WHERE tenant_id = $1 AND name = $2;

-- name: set_mcp_server_enabled
UPDATE mcp_servers SET enabled = $3, updated_at = now()
WHERE tenant_id = $1 AND name = $2
RETURNING *;

-- name: delete_mcp_server
DELETE FROM mcp_servers WHERE tenant_id = $1 AND name = $2 RETURNING name;

-- name: lock_mcp_server_configs
-- Every server row, locked for the key rotation.
SELECT tenant_id, name, config FROM mcp_servers ORDER BY tenant_id, name FOR UPDATE;

-- name: update_mcp_server_config
UPDATE mcp_servers SET config = $3 WHERE tenant_id = $1 AND name = $2;

-- name: lock_tenant_mcp
-- Every tenant MCP configuration that names servers, locked for the key rotation.
SELECT id, mcp FROM tenants WHERE jsonb_typeof(mcp -> 'mcpServers') = 'object' ORDER BY id
FOR UPDATE;

-- name: update_tenant_mcp
UPDATE tenants SET mcp = $2 WHERE id = $1;
