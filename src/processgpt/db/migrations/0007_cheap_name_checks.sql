-- Name checks without bounded repetition. Postgres expands a regex like '[a-z0-9_]{0,63}' into
-- a large automaton: matching one short name costs ~5 µs, against ~0.5 µs for '[a-z0-9_]*'
-- plus a length limit, which accepts exactly the same names. A CHECK runs on every insert and
-- on every update of its row, whatever the update changes: each event row paid it once, and
-- each task paid agent_orch's at its insert, its claim and its finish, about a sixth of the
-- Postgres time of a no-op task.

ALTER TABLE events DROP CONSTRAINT events_event_type_check,
    ADD CONSTRAINT events_event_type_check
        CHECK (event_type ~ '^[a-z][a-z0-9_]*$' AND length(event_type) <= 64);

ALTER TABLE todolist DROP CONSTRAINT todolist_agent_orch_check,
    ADD CONSTRAINT todolist_agent_orch_check
        CHECK (agent_orch ~ '^[a-z0-9][a-z0-9_.:-]*$' AND length(agent_orch) <= 64),
    DROP CONSTRAINT todolist_agent_profile_check,
    ADD CONSTRAINT todolist_agent_profile_check
        CHECK (agent_profile ~ '^[a-z0-9][a-z0-9_.:-]*$' AND length(agent_profile) <= 64);

ALTER TABLE tenants DROP CONSTRAINT tenants_id_check,
    ADD CONSTRAINT tenants_id_check
        CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' AND length(id) <= 64);

ALTER TABLE orchestrators DROP CONSTRAINT orchestrators_name_check,
    ADD CONSTRAINT orchestrators_name_check
        CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]*$' AND length(name) <= 64);

ALTER TABLE chats DROP CONSTRAINT chats_id_check,
    ADD CONSTRAINT chats_id_check
        CHECK (id ~ '^[A-Za-z0-9_.:-]+$' AND length(id) <= 128),
    DROP CONSTRAINT chats_agent_orch_check,
    ADD CONSTRAINT chats_agent_orch_check
        CHECK (agent_orch ~ '^[a-z0-9][a-z0-9_.:-]*$' AND length(agent_orch) <= 64);

ALTER TABLE agents DROP CONSTRAINT agents_name_check,
    ADD CONSTRAINT agents_name_check
        CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]*$' AND length(name) <= 64),
    DROP CONSTRAINT agents_agent_orch_check,
    ADD CONSTRAINT agents_agent_orch_check
        CHECK (agent_orch ~ '^[a-z0-9][a-z0-9_.:-]*$' AND length(agent_orch) <= 64);

ALTER TABLE mcp_servers DROP CONSTRAINT mcp_servers_name_check,
    ADD CONSTRAINT mcp_servers_name_check
        CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]*$' AND length(name) <= 64);
