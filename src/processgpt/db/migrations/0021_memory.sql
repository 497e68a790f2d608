-- Long-term memory: what agents learn from feedback and what the Agent Boss teaches them.
--
-- An item belongs to a tenant and a scope: agent (profile or orchestrator name), process
-- definition, activity, user; a NULL scope column means "any" (wider). A task sees the items
-- whose every scope column is NULL or equal to its own. Items are never hard-deleted by the
-- product: status moves proposed -> active -> superseded | deleted, and every change is a row
-- of memory_history (append-only: updates of it are refused).
--
-- Retrieval (db/queries/memories.sql) is hybrid: cosine similarity on `embedding` (HNSW,
-- iterative index scans so selective scope filters lose nothing) fused by reciprocal rank with
-- full-text ranking on `terms` ('simple' configuration; the Python side adds Hangul
-- character bigrams to the text indexed and searched, so Korean words match across particles
-- and endings: 보고서는 / 보고서를 / 보고서).

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE memories (
    id                 uuid PRIMARY KEY DEFAULT processgpt_uuid_v7(),
    tenant_id          text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent              text CHECK (length(agent) BETWEEN 1 AND 200),
    proc_def_id        text CHECK (length(proc_def_id) BETWEEN 1 AND 200),
    activity_id        text CHECK (length(activity_id) BETWEEN 1 AND 200),
    user_id            text CHECK (length(user_id) BETWEEN 1 AND 200),
    kind               text NOT NULL CHECK (kind IN ('fact', 'guideline', 'preference', 'correction')),
    content            text NOT NULL CHECK (length(content) BETWEEN 1 AND 10000),
    -- A correction keeps the answer it corrects; `content` is the corrected one.
    original           text CHECK (length(original) <= 20000),
    content_hash       bytea NOT NULL,  -- sha-256 of the normalised content: exact dedup
    embedding          vector(384),
    embedding_model    text,
    terms              tsvector NOT NULL,
    status             text NOT NULL CHECK (status IN ('proposed', 'active', 'superseded', 'deleted')),
    pinned             boolean NOT NULL DEFAULT false,
    source             text NOT NULL CHECK (source IN ('feedback', 'boss', 'agent')),
    source_task_id     uuid,
    source_feedback_id uuid,
    superseded_by      uuid REFERENCES memories (id),
    valid_from         timestamptz NOT NULL DEFAULT now(),
    valid_to           timestamptz,
    expires_at         timestamptz,
    created_by         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'correction' OR original IS NOT NULL),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL)),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
-- One live item per content and scope: the same lesson taught twice is one item.
CREATE UNIQUE INDEX memories_dedup ON memories
    (tenant_id, agent, proc_def_id, activity_id, user_id, content_hash) NULLS NOT DISTINCT
    WHERE status IN ('proposed', 'active');
CREATE INDEX memories_scope ON memories (tenant_id, agent, status);
CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops)
    WHERE status = 'active';
CREATE INDEX memories_terms ON memories USING gin (terms) WHERE status = 'active';
CREATE INDEX memories_feedback ON memories (source_feedback_id) WHERE source_feedback_id IS NOT NULL;
CREATE INDEX memories_stale_embedding ON memories (tenant_id, embedding_model)
    WHERE status IN ('proposed', 'active');

CREATE TABLE memory_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    memory_id  uuid NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 300),
    action     text NOT NULL CHECK (action IN ('created', 'proposed', 'updated', 'approved',
                                               'rejected', 'superseded', 'deleted', 're-embedded')),
    reason     text CHECK (length(reason) <= 2000),
    before     jsonb,
    after      jsonb
);
CREATE INDEX memory_history_item ON memory_history (memory_id, id);

CREATE FUNCTION memory_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'memory_history is append-only' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER memory_history_append_only BEFORE UPDATE ON memory_history
    FOR EACH ROW EXECUTE FUNCTION memory_history_append_only();

-- Which items a task was given (pinned, retrieved) or found with its memory_search tool.
CREATE TABLE memory_uses (
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    task_id    uuid NOT NULL,
    memory_id  uuid NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    how        text NOT NULL CHECK (how IN ('pinned', 'retrieved', 'tool')),
    rank       integer NOT NULL,
    score      double precision,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, memory_id, how)
);
CREATE INDEX memory_uses_item ON memory_uses (memory_id);

-- Feedback waiting for the learning step: explicit feedback on a task, and implicit signals
-- (a task failed, was re-queued, or its draft was changed by a person). Claimed like tasks
-- (FOR UPDATE SKIP LOCKED, a lease); the decisions and `status = 'done'` commit together, so a
-- worker killed mid-way leaves the row to be claimed again and nothing applied twice.
CREATE TABLE memory_feedback (
    id           uuid PRIMARY KEY DEFAULT processgpt_uuid_v7(),
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    task_id      uuid,
    signal       text NOT NULL CHECK (signal IN ('feedback', 'failed', 'requeued', 'draft_changed')),
    agent        text,
    proc_def_id  text,
    activity_id  text,
    user_id      text,
    query        text,
    answer       jsonb,
    feedback     jsonb,
    diff         jsonb,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    consumer     text,
    lease_until  timestamptz,
    outcome      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX memory_feedback_due ON memory_feedback (run_at) WHERE status = 'pending';
CREATE INDEX memory_feedback_lease ON memory_feedback (lease_until) WHERE status = 'processing';
CREATE INDEX memory_feedback_task ON memory_feedback (task_id);

-- Whether lessons learned from feedback are active at once or wait for the Agent Boss:
-- per tenant (agent NULL) and per agent (wins over the tenant's).
CREATE TABLE memory_policies (
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent         text CHECK (length(agent) BETWEEN 1 AND 200),
    auto_activate boolean NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant_id, agent)
);

-- Implicit feedback: a task that failed or was re-queued is a signal for the learning step.
CREATE FUNCTION memory_task_signal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_feedback (tenant_id, task_id, signal, agent, proc_def_id, activity_id,
                                 user_id, query, answer, diff)
    VALUES (NEW.tenant_id, NEW.id,
            CASE WHEN NEW.status = 'FAILED' THEN 'failed' ELSE 'requeued' END,
            COALESCE(NEW.agent_profile, NEW.agent_orch), NEW.proc_def_id, NEW.activity_id,
            NEW.user_id, left(NEW.query, 20000), NEW.output,
            CASE WHEN NEW.status = 'FAILED' THEN jsonb_build_object('error', NEW.error)
                 ELSE jsonb_build_object('previous_status', OLD.status::text,
                                         'previous_error', OLD.error) END);
    RETURN NULL;
END $$;
CREATE TRIGGER memory_task_failed AFTER UPDATE OF status ON todolist
    FOR EACH ROW WHEN (NEW.status = 'FAILED' AND OLD.status IS DISTINCT FROM 'FAILED')
    EXECUTE FUNCTION memory_task_signal();
CREATE TRIGGER memory_task_requeued AFTER UPDATE OF status ON todolist
    FOR EACH ROW WHEN (OLD.status IN ('FAILED', 'CANCELLED', 'DONE') AND NEW.status = 'PENDING')
    EXECUTE FUNCTION memory_task_signal();
