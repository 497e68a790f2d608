-- The rows of a worker's batch write, sent as two arrays of records (one per task, one per
-- event) instead of one array per column: the driver checks every array element it encodes
-- (an ABC instance check or two each), so a record per row costs it a fraction of what a
-- column per field did.
CREATE TYPE task_write AS (
    id        uuid,
    fence     bigint,
    last_seq  bigint,
    status    todo_status,
    output    text,
    draft     text,
    error     text,
    delay     float8,
    attempts  int
);

CREATE TYPE event_write AS (
    todo_id     uuid,
    seq         bigint,
    job_id      text,
    event_type  text,
    crew_type   text,
    status      text,
    data        text
);
