-- Fair claims (queries/tasks.sql claim_tasks): one tenant's backlog does not starve another.
--
-- A tenant's share of the workers is its weight; a tenant may also be held to a number of
-- task starts per second (a token bucket kept on its row, charged by the claim that starts
-- its tasks). Both are operator settings (PUT /v1/tenants/{id}).
ALTER TABLE tenants
    ADD COLUMN weight integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    ADD COLUMN max_tasks_per_second double precision
        CHECK (max_tasks_per_second > 0 AND max_tasks_per_second <= 1000000),
    ADD COLUMN rate_tokens double precision NOT NULL DEFAULT 0,
    ADD COLUMN rate_at timestamptz;

-- The claim index gains the tenant after the orchestrator: the claim finds the tenants with
-- pending work of an orchestrator by skipping along it (one descent per tenant, whatever
-- the backlog), then reads each tenant's candidates in priority and age order from its own
-- range. Counting an orchestrator's pending tasks (metrics, KEDA) still reads one range.
DROP INDEX todolist_claim;
CREATE INDEX todolist_claim ON todolist (agent_orch, tenant_id, priority DESC, run_at, id)
    WHERE status = 'PENDING';

-- Room left under the operator's per-orchestrator limits of running tasks (names[i] may run
-- at most limits[i] tasks at once, across all workers). For each limited name it takes a
-- transaction-scoped advisory lock (in name order, so two claims cannot deadlock), then
-- counts that name's running tasks. The function is VOLATILE, so the count reads a snapshot
-- taken after the lock is held: it sees every claim committed by the previous holder, and
-- claims of a limited orchestrator never exceed its limit however many workers claim at once.
CREATE FUNCTION processgpt_agent_room(names text[], limits integer[])
RETURNS TABLE (name text, room integer) LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT AS $$
DECLARE
    running integer;
BEGIN
    FOR name, room IN
        SELECT DISTINCT ON (l.n) l.n, l.m FROM unnest(names, limits) AS l(n, m)
        WHERE l.n IS NOT NULL AND l.m IS NOT NULL
        ORDER BY l.n, l.m
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('processgpt.agent_room:' || name, 0));
        SELECT count(*) INTO running FROM todolist t
        WHERE t.status = 'IN_PROGRESS' AND t.agent_orch = name;
        room := greatest(0, room - running);
        RETURN NEXT;
    END LOOP;
END
$$;
