-- The foundation: tenants, people and agents, process definitions and instances, forms,
-- process sources, the task queue (todolist) and the ordered event log (events).
-- Names follow the ProcessGPT schema where the concept is the same.

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name        text NOT NULL DEFAULT '',
    mcp         jsonb NOT NULL DEFAULT '{}'::jsonb,  -- the tenant's MCP configuration
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id, name) VALUES ('default', 'Default tenant');

-- People and agents (ProcessGPT keeps both in `users`, agents with is_agent = true).
CREATE TABLE users (
    id          text NOT NULL,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    username    text,
    email       text,
    is_agent    boolean NOT NULL DEFAULT false,
    role        text,
    goal        text,
    persona     text,
    tools       text,
    skills      text,
    model       text,
    endpoint    text,
    agent_orch  text,
    profile     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX users_email ON users (tenant_id, email);

-- Orchestrators known to the runtime: registered by workers when they start.
CREATE TABLE orchestrators (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    description   text NOT NULL DEFAULT '',
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE proc_def (
    id          text NOT NULL,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version     integer NOT NULL DEFAULT 1 CHECK (version > 0),
    name        text NOT NULL DEFAULT '',
    definition  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id, version)
);

CREATE TYPE proc_inst_status AS ENUM ('NEW', 'RUNNING', 'COMPLETED', 'ERROR', 'CANCELLED');

CREATE TABLE bpm_proc_inst (
    proc_inst_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    proc_def_id         text,
    proc_def_version    integer,
    proc_inst_name      text NOT NULL DEFAULT '',
    status              proc_inst_status NOT NULL DEFAULT 'NEW',
    variables_data      jsonb NOT NULL DEFAULT '{}'::jsonb,
    current_activity_ids text[] NOT NULL DEFAULT '{}',
    participants        text[] NOT NULL DEFAULT '{}',
    start_date          timestamptz NOT NULL DEFAULT now(),
    end_date            timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, proc_def_id, proc_def_version)
        REFERENCES proc_def (tenant_id, id, version),
    CHECK ((status IN ('COMPLETED', 'ERROR', 'CANCELLED')) = (end_date IS NOT NULL))
);
CREATE INDEX bpm_proc_inst_tenant ON bpm_proc_inst (tenant_id, start_date DESC);

CREATE TABLE form_def (
    id           text NOT NULL,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    proc_def_id  text,
    activity_id  text,
    html         text NOT NULL DEFAULT '',
    fields_json  jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE proc_inst_source (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    proc_inst_id  uuid NOT NULL REFERENCES bpm_proc_inst (proc_inst_id) ON DELETE CASCADE,
    file_name     text NOT NULL,
    file_path     text NOT NULL DEFAULT '',
    mime_type     text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX proc_inst_source_inst ON proc_inst_source (proc_inst_id);

CREATE TYPE todo_status AS ENUM
    ('PENDING', 'IN_PROGRESS', 'DONE', 'FAILED', 'CANCELLED', 'INPUT_REQUIRED');

CREATE TABLE todolist (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    proc_inst_id    uuid REFERENCES bpm_proc_inst (proc_inst_id) ON DELETE CASCADE,
    proc_def_id     text,
    activity_id     text,
    activity_name   text,
    user_id         text,
    tool            text,          -- e.g. 'formHandler:<form id>' names the task's form
    description     text,
    agent_orch      text NOT NULL CHECK (agent_orch ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    query           text NOT NULL DEFAULT '' CHECK (length(query) <= 100000),
    input           jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(input) = 'object'),
    status          todo_status NOT NULL DEFAULT 'PENDING',
    priority        integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    run_at          timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    consumer        text,
    lease_until     timestamptz,
    fence           bigint NOT NULL DEFAULT 0,   -- bumped by every claim and every outside change
    last_seq        bigint NOT NULL DEFAULT 0,   -- seq of the task's newest event
    output          jsonb,
    draft           jsonb,
    error           jsonb,
    feedback        jsonb,
    human_response  jsonb,
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, idempotency_key),
    -- Only a running task has an owner and a lease.
    CHECK ((status = 'IN_PROGRESS') = (consumer IS NOT NULL AND lease_until IS NOT NULL)),
    -- Exactly the terminal states have a finish time.
    CHECK ((status IN ('DONE', 'FAILED', 'CANCELLED')) = (finished_at IS NOT NULL)),
    CHECK (attempts <= max_attempts)
);
-- The claim: pending work of given orchestrators, highest priority first, then oldest.
CREATE INDEX todolist_claim ON todolist (agent_orch, priority DESC, run_at, id)
    WHERE status = 'PENDING';
-- Lease recovery: running tasks by lease expiry.
CREATE INDEX todolist_lease ON todolist (lease_until) WHERE status = 'IN_PROGRESS';
CREATE INDEX todolist_tenant_status ON todolist (tenant_id, status, created_at DESC);
CREATE INDEX todolist_proc_inst ON todolist (proc_inst_id) WHERE proc_inst_id IS NOT NULL;

CREATE TABLE events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL,
    todo_id       uuid NOT NULL REFERENCES todolist (id) ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq > 0),
    proc_inst_id  uuid,
    job_id        text NOT NULL,
    event_type    text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    crew_type     text,
    status        text CHECK (status IN ('ASKED', 'APPROVED', 'REJECTED')),
    data          jsonb NOT NULL,
    "timestamp"   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (todo_id, seq)
);
CREATE INDEX events_proc_inst ON events (proc_inst_id, id) WHERE proc_inst_id IS NOT NULL;

-- Wake workers when work becomes claimable. Postgres folds identical notifications of one
-- transaction into one, so a bulk insert costs one NOTIFY per orchestrator.
CREATE FUNCTION todolist_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('processgpt_tasks', NEW.agent_orch);
    RETURN NULL;
END $$;

CREATE TRIGGER todolist_pending_insert AFTER INSERT ON todolist
    FOR EACH ROW WHEN (NEW.status = 'PENDING') EXECUTE FUNCTION todolist_notify_pending();
CREATE TRIGGER todolist_pending_update AFTER UPDATE OF status ON todolist
    FOR EACH ROW WHEN (NEW.status = 'PENDING' AND OLD.status <> 'PENDING')
    EXECUTE FUNCTION todolist_notify_pending();
