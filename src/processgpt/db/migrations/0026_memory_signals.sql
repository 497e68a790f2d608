-- Implicit feedback (a task failed or was re-queued) is recorded with what changed (its error)
-- as a signal for people and later learning; the learning step calls no model for it, so it
-- is stored finished (status 'done', outcome {"recorded": true}).
CREATE OR REPLACE FUNCTION memory_task_signal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_feedback (tenant_id, task_id, signal, agent, proc_def_id, activity_id,
                                 user_id, query, answer, diff, status, outcome, finished_at)
    VALUES (NEW.tenant_id, NEW.id,
            CASE WHEN NEW.status = 'FAILED' THEN 'failed' ELSE 'requeued' END,
            COALESCE(NEW.agent_profile, NEW.agent_orch), NEW.proc_def_id, NEW.activity_id,
            NEW.user_id, left(NEW.query, 20000), NEW.output,
            CASE WHEN NEW.status = 'FAILED' THEN jsonb_build_object('error', NEW.error)
                 ELSE jsonb_build_object('previous_status', OLD.status::text,
                                         'previous_error', OLD.error) END,
            'done', '{"recorded": true}'::jsonb, now());
    RETURN NULL;
END $$;
