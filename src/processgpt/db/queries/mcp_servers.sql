-- name: lock_tenant_mcp_servers
-- Serialises adding servers for one tenant (until the transaction ends), so the count that
-- insert_mcp_server checks cannot be passed by two inserts at once.
SELECT pg_advisory_xact_lock(hashtextextended('processgpt.mcp_servers:' || $1, 0));

-- name: insert_mcp_server
-- Inserts the server if the tenant has fewer than $6 and none named $2. One row: the new
-- server's columns (NULL when nothing was inserted), has_room, taken.
WITH room AS (
    SELECT count(*) < $6::integer AS ok FROM mcp_servers WHERE tenant_id = $1
), inserted AS (
    INSERT INTO mcp_servers (tenant_id, name, transport, config, enabled)
    SELECT $1::text, $2::text, $3::text, $4::jsonb, $5::boolean FROM room WHERE room.ok
    ON CONFLICT (tenant_id, name) DO NOTHING
    RETURNING *
)
SELECT inserted.*, room.ok AS has_room,
       EXISTS (SELECT 1 FROM mcp_servers s WHERE s.tenant_id = $1 AND s.name = $2) AS taken
FROM room LEFT JOIN inserted ON true;

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
