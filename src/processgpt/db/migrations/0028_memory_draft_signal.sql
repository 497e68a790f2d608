-- A person who completes a work item whose agent left a draft, with an output that differs
-- from it, is a signal too: recorded with the draft, the output and the top-level fields that
-- changed (the size of the change tells how substantial it was).
CREATE FUNCTION memory_draft_signal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text[];
BEGIN
    IF jsonb_typeof(OLD.draft) = 'object' AND jsonb_typeof(NEW.output) = 'object' THEN
        SELECT array_agg(k ORDER BY k) INTO changed
        FROM (SELECT jsonb_object_keys(OLD.draft) AS k
              UNION SELECT jsonb_object_keys(NEW.output)) keys
        WHERE OLD.draft -> k IS DISTINCT FROM NEW.output -> k;
    END IF;
    INSERT INTO memory_feedback (tenant_id, task_id, signal, agent, proc_def_id, activity_id,
                                 user_id, query, answer, diff, status, outcome, finished_at)
    VALUES (NEW.tenant_id, NEW.id, 'draft_changed',
            COALESCE(NEW.agent_profile, NEW.agent_orch), NEW.proc_def_id, NEW.activity_id,
            NEW.user_id, left(NEW.query, 20000), NEW.output,
            jsonb_build_object('draft', OLD.draft, 'output', NEW.output,
                               'changed_fields', to_jsonb(changed)),
            'done', '{"recorded": true}'::jsonb, now());
    RETURN NULL;
END $$;
CREATE TRIGGER memory_draft_changed AFTER UPDATE OF status ON todolist
    FOR EACH ROW WHEN (OLD.status = 'TODO' AND NEW.status = 'DONE' AND OLD.draft IS NOT NULL
                       AND NEW.output IS DISTINCT FROM OLD.draft)
    EXECUTE FUNCTION memory_draft_signal();
