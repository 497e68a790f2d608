-- The W3C trace context of whatever started a process instance (the POST /v1/processes
-- request, a schedule's tick): the worker's span for running one of its tasks links to it
-- when the task carries none of its own. A sub-process instance has none: its tasks link to
-- the nearest ancestor's. NULL when nothing traced started it.
ALTER TABLE bpm_proc_inst
    ADD COLUMN traceparent text CHECK (traceparent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'),
    ADD COLUMN tracestate text CHECK (length(tracestate) <= 512);
