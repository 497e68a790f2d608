-- Workers you can see, and the trace context a task was created in.
--
-- `workers`: one row per running worker process, written by the worker itself: inserted when
-- it starts, refreshed by its presence beat (every ~10 s, with its slots in use), deleted when
-- it stops. `id` is the worker's consumer name (what `todolist.consumer` holds while it runs a
-- task). A row whose heartbeat is older than the "lost" threshold (30 s by default) belongs to
-- a worker that died without deregistering; every worker's beat deletes such rows once they
-- are older than the "forget" threshold. The table holds one row per live worker (plus the
-- recently lost), so every read of it is cheap.
CREATE TABLE workers (
    id                text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 300),
    host              text NOT NULL CHECK (length(host) <= 255),
    pid               integer NOT NULL CHECK (pid > 0),
    version           text NOT NULL CHECK (length(version) <= 100),
    agents            text[] NOT NULL CHECK (cardinality(agents) > 0),
    slots             integer NOT NULL CHECK (slots > 0),
    slots_in_use      integer NOT NULL DEFAULT 0 CHECK (slots_in_use >= 0),
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- The W3C trace context (https://www.w3.org/TR/trace-context/) of the request that created
-- the task: the worker's span for running it links to it. NULL when the request carried none.
ALTER TABLE todolist
    ADD COLUMN traceparent text CHECK (traceparent ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'),
    ADD COLUMN tracestate text CHECK (length(tracestate) <= 512);
