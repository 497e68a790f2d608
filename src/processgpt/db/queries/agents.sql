-- name: resolve_agent
-- What a task's agent_orch names for a tenant: a profile of the tenant (its orchestrator)
-- and whether an orchestrator of that name is registered.
SELECT (SELECT p.agent_orch FROM agents p WHERE p.tenant_id = $1 AND p.name = $2) AS profile_orch,
       EXISTS (SELECT 1 FROM orchestrators o WHERE o.name = $2) AS orch_exists;

-- name: insert_agent
INSERT INTO agents (tenant_id, name, agent_orch, model, instructions, persona, tools, skills)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, name) DO NOTHING
RETURNING *;

-- name: update_agent
UPDATE agents
SET agent_orch = $3, model = $4, instructions = $5, persona = $6, tools = $7, skills = $8,
    updated_at = now()
WHERE tenant_id = $1 AND name = $2
RETURNING *;

-- name: get_agent
SELECT * FROM agents WHERE tenant_id = $1 AND name = $2;

-- name: list_agents
SELECT * FROM agents WHERE tenant_id = $1 ORDER BY name;

-- name: delete_agent
DELETE FROM agents WHERE tenant_id = $1 AND name = $2 RETURNING name;
