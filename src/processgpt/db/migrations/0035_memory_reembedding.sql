-- Re-embedding in the background, and drafts changed by a person as a learning signal.
--
-- A worker re-embeds live items whose `embedding_model` is not its configured model
-- (memory_stale_embeddings). It looks for them often, so finding none must be cheap at any
-- size: an index on the model alone (range scans around the current model, and NULL), in
-- place of the one led by the tenant (the re-embedding pass is not per tenant).
DROP INDEX memories_stale_embedding;
CREATE INDEX memories_embedding_model ON memories (embedding_model)
    WHERE status IN ('proposed', 'active');

-- A draft a person changed before completing the work item is queued for the learning step
-- (status 'pending'), which turns a substantial change into proposals for the Agent Boss
-- (never active on its own); failed and re-queued tasks stay recorded only.
CREATE OR REPLACE FUNCTION memory_draft_signal() RETURNS trigger LANGUAGE plpgsql AS $$
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
                                 user_id, query, answer, diff)
    VALUES (NEW.tenant_id, NEW.id, 'draft_changed',
            COALESCE(NEW.agent_profile, NEW.agent_orch), NEW.proc_def_id, NEW.activity_id,
            NEW.user_id, left(NEW.query, 20000), NEW.output,
            jsonb_build_object('draft', OLD.draft, 'output', NEW.output,
                               'changed_fields', to_jsonb(changed)));
    RETURN NULL;
END $$;
