-- Every claim and every finish rewrites the task's row, and a rewrite that changes the status
-- is never a HOT update: it adds an entry to every index whose predicate the new version
-- matches. A task passes through IN_PROGRESS and DONE; the indexes below leave those two
-- states out wherever a query does not need them, so each task's two updates touch three
-- indexes (primary key, lease, tenant listing) instead of six, and each event row skips a
-- foreign-key lookup.

-- Only tasks submitted with an idempotency key need the uniqueness check.
ALTER TABLE todolist DROP CONSTRAINT todolist_tenant_id_idempotency_key_key;
CREATE UNIQUE INDEX todolist_idempotency ON todolist (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Per-tenant lists of the states somebody looks for (the backlog and its backpressure count,
-- dead letters, cancelled tasks, tasks waiting for a person). Running and done tasks are
-- listed through todolist_tenant_created (and todolist_lease for running ones).
DROP INDEX todolist_tenant_status;
CREATE INDEX todolist_tenant_open ON todolist (tenant_id, status, created_at DESC, id DESC)
    WHERE status IN ('PENDING', 'FAILED', 'CANCELLED', 'INPUT_REQUIRED');

-- Events are only ever inserted by statements that update the task's row first in the same
-- statement (the fenced batch write, cancel, requeue, answer, lease recovery), so the
-- per-row foreign-key check adds nothing but cost. Deleting or truncating tasks still removes
-- their events.
ALTER TABLE events DROP CONSTRAINT events_todo_id_fkey;
CREATE FUNCTION todolist_delete_events() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    -- An array, not a join: plpgsql keeps the first plan of a statement without parameters,
    -- and a join planned for a bulk delete would scan all events for every later delete.
    DELETE FROM events WHERE todo_id = ANY (ARRAY(SELECT id FROM deleted_tasks));
    RETURN NULL;
END $$;
CREATE TRIGGER todolist_delete_events AFTER DELETE ON todolist
    REFERENCING OLD TABLE AS deleted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION todolist_delete_events();
CREATE FUNCTION todolist_truncate_events() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE events;
    RETURN NULL;
END $$;
CREATE TRIGGER todolist_truncate_events AFTER TRUNCATE ON todolist
    FOR EACH STATEMENT EXECUTE FUNCTION todolist_truncate_events();
