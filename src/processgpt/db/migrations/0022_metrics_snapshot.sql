-- Metrics: the deployment's queue gauges, computed once per interval by one process.
--
-- One row: what the gauges of every process's /metrics show (JSON, see
-- queries/metrics.sql compute_metrics_snapshot) and when it was taken. Whichever process
-- finds it older than its interval takes a transaction-level advisory lock and recomputes
-- it; the others read it (a primary-key lookup). The computation reads only open work
-- through partial indexes: pending tasks (todolist_claim), running tasks (todolist_lease),
-- tasks waiting for a person (below), open instances (bpm_proc_inst_open), so its cost grows
-- with the open work, never with the finished tasks.

CREATE TABLE metrics_snapshot (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    taken_at timestamptz NOT NULL,
    data     jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object')
);

-- Tasks waiting for a person's answer, by agent: only tasks entering INPUT_REQUIRED pay for
-- it (todolist_tenant_open also holds every FAILED and CANCELLED task, which grow forever).
CREATE INDEX todolist_input_required ON todolist (agent_orch) WHERE status = 'INPUT_REQUIRED';
