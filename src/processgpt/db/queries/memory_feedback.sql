-- The learning step's queue (db/memory_feedback.py): feedback claimed like tasks.

-- name: feedback_claim
-- Due pending rows, and rows whose lease ran out (a worker died mid-way), oldest first.
UPDATE memory_feedback f
SET status = 'processing', attempts = f.attempts + 1, consumer = $1,
    lease_until = now() + make_interval(secs => $3)
WHERE f.id IN (
    SELECT id FROM memory_feedback
    WHERE (status = 'pending' AND run_at <= now())
       OR (status = 'processing' AND lease_until < now())
    ORDER BY run_at, id
    FOR UPDATE SKIP LOCKED
    LIMIT $2
)
RETURNING f.*;

-- name: feedback_finish
-- Fenced by the attempt: a worker whose lease was taken over finishes nothing.
UPDATE memory_feedback
SET status = $3, outcome = $4::jsonb, finished_at = now(), consumer = NULL, lease_until = NULL
WHERE id = $1 AND attempts = $2 AND status = 'processing'
RETURNING id;

-- name: feedback_retry
UPDATE memory_feedback
SET status = 'pending', run_at = now() + make_interval(secs => $3), consumer = NULL,
    lease_until = NULL, outcome = $4::jsonb
WHERE id = $1 AND attempts = $2 AND status = 'processing'
RETURNING id;

-- name: feedback_of_task
SELECT * FROM memory_feedback WHERE tenant_id = $1 AND task_id = $2 ORDER BY created_at, id;
