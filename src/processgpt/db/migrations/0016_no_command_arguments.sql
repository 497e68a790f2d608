-- Tenants' old stdio servers keep no arguments, environment or working directory.
--
-- Migration 0014 switched the stdio servers tenants had added off for good, but kept their
-- config, whose "args" (often "--token …"), "env" values and "cwd" are in plaintext (the key
-- rotation only seals env values, and never args). They can never run: drop them, in
-- mcp_servers rows and in the "command" entries of tenants.mcp. The command stays, so the
-- tenant's admin still recognises the row (the API shows it) and can delete it.

UPDATE mcp_servers SET config = config - 'args' - 'env' - 'cwd', updated_at = now()
WHERE transport = 'stdio' AND (config ? 'args' OR config ? 'env' OR config ? 'cwd');

UPDATE tenants t
SET mcp = jsonb_set(t.mcp, '{mcpServers}', (
    SELECT jsonb_object_agg(
        e.name,
        CASE WHEN jsonb_typeof(e.entry) = 'object' AND e.entry ? 'command'
             THEN e.entry - 'args' - 'env' - 'cwd' ELSE e.entry END)
    FROM jsonb_each(t.mcp -> 'mcpServers') AS e(name, entry)))
WHERE jsonb_typeof(t.mcp -> 'mcpServers') = 'object'
  AND EXISTS (SELECT 1 FROM jsonb_each(t.mcp -> 'mcpServers') AS e(name, entry)
              WHERE jsonb_typeof(e.entry) = 'object' AND e.entry ? 'command'
                AND (e.entry ? 'args' OR e.entry ? 'env' OR e.entry ? 'cwd'));
