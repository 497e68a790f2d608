-- Notifications (seed 001's `notifications`) and webhooks (per-tenant endpoints and the outbox
-- of their deliveries).
--
-- Both are written by triggers, so they commit in the same transaction as the change that
-- causes them, whatever statement makes it (the worker's batch writes, a process step, the
-- API's task and instance writes):
--
--   todolist  → TODO (inserted or set): notification TASK_ASSIGNED, event human_task.assigned
--   todolist  → INPUT_REQUIRED:         notification INPUT_REQUIRED, event task.input_required
--   todolist  → DONE / FAILED:          events task.completed / task.failed
--   bpm_proc_inst (a root instance) → COMPLETED: notification PROCESS_DONE, process.completed
--   bpm_proc_inst (a root instance) → INCIDENT or ERROR: PROCESS_INCIDENT, process.incident
--
-- An event becomes one delivery per enabled endpoint of the tenant that wants its type (no
-- types: every type). The triggers NOTIFY processgpt_notifications (payload: the tenant) and
-- processgpt_webhooks (empty); Postgres folds identical notifications of one transaction into
-- one, so a batch costs one of each at most.

CREATE TABLE notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      text,   -- the person it is for (NULL: not one person)
    role         text,   -- the role it is for (NULL: not one role); both NULL: everyone
    type         text NOT NULL
        CHECK (type IN ('TASK_ASSIGNED', 'INPUT_REQUIRED', 'PROCESS_DONE', 'PROCESS_INCIDENT')),
    todo_id      uuid,
    proc_inst_id uuid,
    message      text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    read_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction: the live stream's order is (xid, id), and it reads only rows
    -- of transactions older than every running one, so a row can never appear behind a
    -- cursor that was already handed out (identity values are not committed in order).
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX notifications_list ON notifications (tenant_id, id DESC);
CREATE INDEX notifications_stream ON notifications (tenant_id, xid, id);
CREATE INDEX notifications_user ON notifications (tenant_id, user_id, id DESC)
    WHERE user_id IS NOT NULL;

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY DEFAULT processgpt_uuid_v7(),
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url             text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types     text[] NOT NULL DEFAULT '{}',   -- empty: every type
    secret          text NOT NULL,                  -- sealed (db/secret_box.py)
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at, id);

CREATE TYPE webhook_delivery_status AS ENUM ('PENDING', 'DELIVERED', 'DEAD');
-- PENDING: due at next_attempt_at (a claimed one is pushed out by the claim's lease, so a
-- sender that dies mid-delivery leaves it due again: at-least-once, same webhook-id).
-- DELIVERED: a 2xx answer. DEAD: the retry schedule is used up, or the endpoint answered 410.

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT processgpt_uuid_v7(),
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    status          webhook_delivery_status NOT NULL DEFAULT 'PENDING',
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempt_log     jsonb NOT NULL DEFAULT '[]'::jsonb,  -- one object per finished attempt
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CHECK ((status = 'PENDING') = (finished_at IS NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);

-- One event: a notification (when p_type is given) and the deliveries of the tenant's
-- endpoints that want it.
CREATE FUNCTION processgpt_emit(
    p_tenant text, p_event text, p_payload jsonb,
    p_type text, p_user text, p_role text, p_todo uuid, p_inst uuid, p_message text
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_type IS NOT NULL THEN
        INSERT INTO notifications (tenant_id, user_id, role, type, todo_id, proc_inst_id,
                                   message, data)
        VALUES (p_tenant, p_user, p_role, p_type, p_todo, p_inst, left(p_message, 500),
                p_payload);
        PERFORM pg_notify('processgpt_notifications', p_tenant);
    END IF;
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = p_tenant AND enabled) THEN
        INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_type, payload)
        SELECT p_tenant, e.id, p_event,
               jsonb_build_object('type', p_event, 'timestamp', now(), 'data', p_payload)
        FROM webhook_endpoints e
        WHERE e.tenant_id = p_tenant AND e.enabled
          AND (e.event_types = '{}' OR p_event = ANY (e.event_types));
        IF FOUND THEN
            PERFORM pg_notify('processgpt_webhooks', '');
        END IF;
    END IF;
END $$;

CREATE FUNCTION todolist_emit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb := jsonb_build_object(
        'task_id', NEW.id, 'status', NEW.status, 'agent_orch', NEW.agent_orch,
        'proc_inst_id', NEW.proc_inst_id, 'activity_id', NEW.activity_id,
        'user_id', NEW.user_id, 'role', NEW.role);
    name text := coalesce(nullif(NEW.activity_name, ''), NEW.activity_id, NEW.agent_orch);
BEGIN
    IF NEW.status = 'TODO' THEN
        PERFORM processgpt_emit(NEW.tenant_id, 'human_task.assigned',
            payload || jsonb_build_object('activity_name', NEW.activity_name),
            'TASK_ASSIGNED', NEW.user_id, NEW.role, NEW.id, NEW.proc_inst_id,
            'New work item: ' || name);
    ELSIF NEW.status = 'INPUT_REQUIRED' THEN
        PERFORM processgpt_emit(NEW.tenant_id, 'task.input_required', payload,
            'INPUT_REQUIRED', NEW.user_id, NEW.role, NEW.id, NEW.proc_inst_id,
            'Input needed: ' || name);
    ELSIF NEW.status = 'DONE' THEN
        PERFORM processgpt_emit(NEW.tenant_id, 'task.completed', payload,
            NULL, NULL, NULL, NULL, NULL, NULL);
    ELSIF NEW.status = 'FAILED' THEN
        PERFORM processgpt_emit(NEW.tenant_id, 'task.failed', payload,
            NULL, NULL, NULL, NULL, NULL, NULL);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER todolist_emit_insert AFTER INSERT ON todolist
    FOR EACH ROW WHEN (NEW.status IN ('TODO', 'INPUT_REQUIRED', 'DONE', 'FAILED'))
    EXECUTE FUNCTION todolist_emit();
CREATE TRIGGER todolist_emit_update AFTER UPDATE OF status ON todolist
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status
                       AND NEW.status IN ('TODO', 'INPUT_REQUIRED', 'DONE', 'FAILED'))
    EXECUTE FUNCTION todolist_emit();

CREATE FUNCTION bpm_proc_inst_emit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb := jsonb_build_object(
        'proc_inst_id', NEW.proc_inst_id, 'proc_def_id', NEW.proc_def_id,
        'version', NEW.proc_def_version, 'status', NEW.status);
    name text := coalesce(nullif(NEW.proc_inst_name, ''), NEW.proc_def_id,
                          NEW.proc_inst_id::text);
BEGIN
    IF NEW.status = 'COMPLETED' THEN
        PERFORM processgpt_emit(NEW.tenant_id, 'process.completed', payload,
            'PROCESS_DONE', NULL, NULL, NULL, NEW.proc_inst_id, 'Process completed: ' || name);
    ELSE
        PERFORM processgpt_emit(NEW.tenant_id, 'process.incident', payload,
            'PROCESS_INCIDENT', NULL, NULL, NULL, NEW.proc_inst_id,
            'Process needs attention: ' || name);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER bpm_proc_inst_emit AFTER UPDATE OF status ON bpm_proc_inst
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status
                       AND NEW.status IN ('COMPLETED', 'INCIDENT', 'ERROR')
                       AND NEW.parent_proc_inst_id IS NULL)
    EXECUTE FUNCTION bpm_proc_inst_emit();
