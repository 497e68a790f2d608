-- Process instances that advance: the engine's state, its work items, timers and history.
--
-- bpm_proc_inst.state holds the engine's InstanceState (domain/process/state.py) as JSON: the
-- tokens, activations, armed timers, open incidents and role bindings. NULL marks an instance
-- of the one-task form (POST /v1/processes with "task"), which the engine does not drive.
-- status, current_activity_ids, variables_data and end_date are kept equal to what the state
-- says, in the same transaction as every step, so that lists and filters read plain columns.
--
-- A step of an instance is one transaction that locks the instance row first (FOR UPDATE),
-- then writes everything the step decided: todolist rows (unique per instance, activity and
-- activation, so applying a step twice creates nothing twice), timers, child instances,
-- history lines; a task's final write and the step that consumes it commit together.
--
-- New enum values are only usable once this migration committed: 0018 builds on them.

ALTER TYPE todo_status ADD VALUE IF NOT EXISTS 'TODO';
-- TODO: a person's open work item in the worklist (a human step, or an agent's draft waiting
-- for a person). Workers never claim it; it ends DONE (completed through the API) or CANCELLED.

ALTER TYPE proc_inst_status ADD VALUE IF NOT EXISTS 'INCIDENT';
-- INCIDENT: at least one incident is open; branches without one go on.

ALTER TABLE bpm_proc_inst
    ADD COLUMN state               jsonb,
    ADD COLUMN idempotency_key     text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    ADD COLUMN parent_proc_inst_id uuid REFERENCES bpm_proc_inst (proc_inst_id) ON DELETE CASCADE,
    ADD COLUMN parent_node_id      text,
    ADD COLUMN parent_activation   integer,
    ADD COLUMN subprocess_node_id  text,
    ADD COLUMN history_seq         bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT bpm_proc_inst_parent_check CHECK (
        (parent_proc_inst_id IS NULL) = (parent_node_id IS NULL)
        AND (parent_proc_inst_id IS NULL) = (parent_activation IS NULL));
-- parent_*: a child instance (call activity, or an embedded sub-process, whose graph is the
-- parent definition's node subprocess_node_id) answers (parent, node, activation).
-- history_seq: the last seq used in process_history for the instance.

CREATE UNIQUE INDEX bpm_proc_inst_idempotency ON bpm_proc_inst (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX bpm_proc_inst_child
    ON bpm_proc_inst (parent_proc_inst_id, parent_node_id, parent_activation)
    WHERE parent_proc_inst_id IS NOT NULL;
CREATE INDEX bpm_proc_inst_definition
    ON bpm_proc_inst (tenant_id, proc_def_id, start_date DESC, proc_inst_id DESC);

ALTER TABLE todolist
    ADD COLUMN activation integer CHECK (activation > 0),
    ADD COLUMN due_at     timestamptz,
    ADD COLUMN role       text,
    ADD COLUMN step_event jsonb,
    ADD CONSTRAINT todolist_step_check
        CHECK (activation IS NULL OR (proc_inst_id IS NOT NULL AND activity_id IS NOT NULL));
-- activation: set on the work item of a process step (instance, activity, activation).
-- due_at: the step's SLA (from the activity's duration).
-- role: the activity's role (the worklist of a role).
-- step_event: set on a judge task (text conditions): the engine event waiting for the
-- verdicts, with the verdicts known so far; its result carries the new verdicts.

CREATE UNIQUE INDEX todolist_step ON todolist (proc_inst_id, activity_id, activation)
    WHERE activation IS NOT NULL;

CREATE TABLE process_timers (
    proc_inst_id uuid NOT NULL REFERENCES bpm_proc_inst (proc_inst_id) ON DELETE CASCADE,
    key          text NOT NULL,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    due_at       timestamptz NOT NULL,
    PRIMARY KEY (proc_inst_id, key)
);
-- A timer fires once: the firing transaction takes the row FOR UPDATE SKIP LOCKED, locks the
-- instance, runs the step and deletes the row; a step that cancels the timer (its task
-- completed first) deletes the row in its own transaction, and the loser finds no row.
CREATE INDEX process_timers_due ON process_timers (due_at);

CREATE FUNCTION process_timers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('processgpt_timers', '');
    RETURN NULL;
END $$;
CREATE TRIGGER process_timers_insert AFTER INSERT ON process_timers
    FOR EACH STATEMENT EXECUTE FUNCTION process_timers_notify();

CREATE TABLE process_history (
    proc_inst_id uuid NOT NULL REFERENCES bpm_proc_inst (proc_inst_id) ON DELETE CASCADE,
    seq          bigint NOT NULL CHECK (seq > 0),
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    node_id      text,
    activation   integer,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    at           timestamptz NOT NULL,
    PRIMARY KEY (proc_inst_id, seq)
);
