-- The worker's batch write (queries/events.sql apply_batch) is the only statement that moves a
-- task from IN_PROGRESS to DONE, and it now emits task.completed itself, for the tasks of
-- tenants with an enabled webhook endpoint: one probe per task inside the statement instead of
-- a row trigger call per task (queueing the after-trigger event, refetching the row, a PL/pgSQL
-- call and its query: ~5 µs of Postgres per no-op task, measured with EXPLAIN ANALYZE).
-- Every other change of status keeps going through todolist_emit() as before.

CREATE OR REPLACE TRIGGER todolist_emit_update AFTER UPDATE OF status ON todolist
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status
                       AND NEW.status IN ('TODO', 'INPUT_REQUIRED', 'DONE', 'FAILED')
                       AND NOT (OLD.status = 'IN_PROGRESS' AND NEW.status = 'DONE'))
    EXECUTE FUNCTION todolist_emit();
