-- Schedules: work started on time, once per tick, by whichever worker claims the tick.
--
-- A schedule fires by a cron expression in a time zone (`cron`, `timezone`), by an ISO 8601
-- repeating interval (`cycle`, `R[n]/<start>/<duration>`: timer start events), or once (neither:
-- at `next_run_at`, then it is disabled). It starts a process instance (`target` 'process':
-- `proc_def_id`, `proc_def_version` (NULL: the latest when the tick fires), `start_node`,
-- `variables`, `roles`) or queues a single task (`target` 'task': `task`, the submission's
-- fields as JSON).
--
-- A tick is one transaction: the due row is taken FOR UPDATE SKIP LOCKED, the work started,
-- and `next_run_at` moved to the first tick after now(); so each tick starts its work once
-- across any number of workers, and the ticks missed while nothing ran (`skipped` counts them)
-- run once, not once each.
--
-- `source` 'definition' marks the schedules made from a definition version's timer start
-- events: each publish of a new version of the definition replaces them (name
-- `<definition id>:<start node id>`, which API names cannot take: they have no ':').

CREATE TABLE schedules (
    id               uuid PRIMARY KEY DEFAULT processgpt_uuid_v7(),
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    source           text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'definition')),
    cron             text CHECK (length(cron) BETWEEN 1 AND 200),
    timezone         text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 100),
    cycle            text CHECK (length(cycle) BETWEEN 1 AND 200),
    target           text NOT NULL CHECK (target IN ('process', 'task')),
    proc_def_id      text,
    proc_def_version integer CHECK (proc_def_version > 0),
    start_node       text,
    task             jsonb,
    variables        jsonb NOT NULL DEFAULT '{}'::jsonb,
    roles            jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled          boolean NOT NULL DEFAULT true,
    next_run_at      timestamptz,
    last_run_at      timestamptz,
    runs             bigint NOT NULL DEFAULT 0 CHECK (runs >= 0),
    skipped          bigint NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    last_error       text CHECK (length(last_error) <= 2000),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK (cron IS NULL OR cycle IS NULL),
    CHECK (NOT enabled OR next_run_at IS NOT NULL),
    CHECK ((target = 'process') = (proc_def_id IS NOT NULL)),
    CHECK ((target = 'task') = (task IS NOT NULL)),
    CHECK (source = 'api' OR target = 'process')
);

-- What the firing loop reads: the earliest enabled ticks.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;
CREATE INDEX schedules_definition ON schedules (tenant_id, proc_def_id) WHERE source = 'definition';
