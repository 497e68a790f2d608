-- name: count_webhooks
SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1;

-- name: insert_webhook
INSERT INTO webhook_endpoints (tenant_id, url, description, event_types, secret, enabled)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: get_webhook
SELECT * FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2;

-- name: lock_webhook
SELECT * FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 FOR UPDATE;

-- name: lock_tenant_webhooks
-- Held while counting a tenant's endpoints before adding one: two creates cannot both pass.
SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE;

-- name: list_webhooks
SELECT * FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2;

-- name: update_webhook
-- NULL: unchanged. Enabling clears the reason it was disabled.
UPDATE webhook_endpoints
SET url = coalesce($3, url), description = coalesce($4, description),
    event_types = coalesce($5, event_types), enabled = coalesce($6, enabled),
    disabled_reason = CASE WHEN coalesce($6, enabled) THEN NULL
                           WHEN $6 = false THEN 'disabled through the API'
                           ELSE disabled_reason END,
    updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING *;

-- name: park_deliveries
-- A disabled endpoint's pending deliveries wait (claims never see them) until it is enabled.
UPDATE webhook_deliveries SET next_attempt_at = 'infinity'
WHERE endpoint_id = $1 AND status = 'PENDING';

-- name: resume_deliveries
UPDATE webhook_deliveries SET next_attempt_at = now()
WHERE endpoint_id = $1 AND status = 'PENDING' AND next_attempt_at = 'infinity';

-- name: notify_webhooks
SELECT pg_notify('processgpt_webhooks', '');

-- name: rotate_webhook_secret
UPDATE webhook_endpoints SET secret = $3, updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING *;

-- name: delete_webhook
DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 RETURNING id;

-- name: list_deliveries
-- An endpoint's deliveries, newest first, before the delivery $3 (NULL: from the newest).
SELECT d.id, d.endpoint_id, d.event_type, d.payload, d.status::text AS status, d.attempts,
       CASE WHEN d.next_attempt_at = 'infinity' THEN NULL ELSE d.next_attempt_at END
           AS next_attempt_at,
       d.attempt_log, d.last_error, d.created_at, d.finished_at
FROM webhook_deliveries d
WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND ($3::uuid IS NULL OR d.id < $3)
ORDER BY d.id DESC
LIMIT $4;

-- name: get_delivery
SELECT * FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3;

-- name: claim_deliveries
-- Due deliveries of enabled endpoints, oldest due first; rows another sender is claiming are
-- skipped. The claim counts the attempt and pushes the delivery $2 seconds out (its lease):
-- a sender that dies mid-delivery leaves it due again then, with the same id.
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE status = 'PENDING' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
FROM due, webhook_endpoints e
WHERE d.id = due.id AND e.id = d.endpoint_id
RETURNING d.id, d.tenant_id, d.endpoint_id, d.event_type, d.payload, d.attempts, e.url,
          e.secret;

-- name: record_delivery
-- The end of attempt $2 (a later claim of the same delivery makes this a no-op): $3 the new
-- status, $4 seconds until the next attempt (PENDING), $5 the attempt's log entry, $6 the error.
UPDATE webhook_deliveries
SET status = $3::webhook_delivery_status,
    next_attempt_at = CASE WHEN $3::webhook_delivery_status = 'PENDING' THEN now() + make_interval(secs => $4)
                           ELSE next_attempt_at END,
    attempt_log = attempt_log || jsonb_build_array($5::jsonb),
    last_error = $6,
    finished_at = CASE WHEN $3::webhook_delivery_status = 'PENDING' THEN NULL ELSE now() END
WHERE id = $1 AND attempts = $2 AND status = 'PENDING'
RETURNING id;

-- name: disable_gone_webhook
UPDATE webhook_endpoints
SET enabled = false, disabled_reason = $2, updated_at = now()
WHERE id = $1 AND enabled;

-- name: seconds_until_next_delivery
-- Seconds until the earliest pending delivery (0 or less: due now); NULL when none is.
SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8 FROM webhook_deliveries
WHERE status = 'PENDING' AND next_attempt_at < 'infinity';

-- name: webhook_delivery_counts
-- Deliveries by status (for metrics).
SELECT status::text, count(*) FROM webhook_deliveries GROUP BY status;

-- name: lock_webhook_secrets
SELECT id, secret FROM webhook_endpoints ORDER BY id FOR UPDATE;

-- name: reseal_webhook_secret
UPDATE webhook_endpoints SET secret = $2 WHERE id = $1;
