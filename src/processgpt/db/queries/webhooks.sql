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
-- $3 the new secret; the one it replaces keeps signing beside it for $4 seconds (0: not at
-- all). A secret replaced earlier, still in its overlap, stops signing now.
UPDATE webhook_endpoints
SET previous_secret = CASE WHEN $4::float8 > 0 THEN secret END,
    previous_secret_until = CASE WHEN $4::float8 > 0
                                 THEN now() + make_interval(secs => $4::float8) END,
    secret = $3, updated_at = now()
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

-- name: lock_delivery_claims
-- Held by a claim for its transaction: claims run one at a time across the deployment, so
-- each sees the deliveries in flight that the previous one started (its statement's
-- snapshot is taken after the lock) and the caps below hold however many workers claim.
SELECT pg_advisory_xact_lock(hashtextextended('processgpt.webhook_claims', 0));

-- name: claim_deliveries
-- Up to $1 due deliveries of enabled endpoints for one attempt each, fairly: an endpoint
-- has at most $3 attempts in flight and a tenant at most $4 (across the deployment), and
-- the tenants take turns: a tenant's next delivery is behind every other tenant's that has
-- fewer in flight (then oldest due first). Each enabled endpoint is one index probe for
-- its attempts in flight (webhook_deliveries_in_flight) and one for at most its room of
-- due deliveries (webhook_deliveries_endpoint_due): one endpoint's backlog is never walked.
-- The claim counts the attempt and sets the lease ($2 seconds: next_attempt_at and
-- claimed_until): a sender that dies mid-delivery leaves it due again then, with the same
-- id, and no longer counted in flight.
WITH room AS (
    SELECT e.id, e.tenant_id, $3::int - f.n AS room, f.n AS busy,
           sum(f.n) OVER (PARTITION BY e.tenant_id) AS tenant_busy
    FROM webhook_endpoints e
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n FROM webhook_deliveries f
        WHERE f.endpoint_id = e.id AND f.claimed_until > now()
    ) f
    WHERE e.enabled
), candidates AS (
    SELECT c.id, c.next_attempt_at, r.tenant_id, r.tenant_busy,
           r.busy + row_number() OVER (PARTITION BY r.id ORDER BY c.next_attempt_at, c.id)
               AS depth
    FROM room r
    CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
        WHERE d.endpoint_id = r.id AND d.status = 'PENDING' AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at, d.id
        LIMIT r.room
    ) c
    WHERE r.room > 0 AND r.tenant_busy < $4::int
), turns AS (
    SELECT id, next_attempt_at,
           tenant_busy + row_number() OVER (PARTITION BY tenant_id
                                            ORDER BY depth, next_attempt_at, id) AS turn
    FROM candidates
), picked AS (
    SELECT id FROM turns WHERE turn <= $4::int ORDER BY turn, next_attempt_at, id LIMIT $1
), due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM picked) AND d.status = 'PENDING'
      AND d.next_attempt_at <= now()
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2),
    claimed_until = now() + make_interval(secs => $2)
FROM due, webhook_endpoints e
WHERE d.id = due.id AND e.id = d.endpoint_id
RETURNING d.id, d.tenant_id, d.endpoint_id, d.event_type, d.payload, d.attempts, e.url,
          e.secret,
          CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END
              AS previous_secret;

-- name: record_delivery
-- The end of attempt $2 (a later claim of the same delivery makes this a no-op): $3 the new
-- status, $4 seconds until the next attempt (PENDING), $5 the attempt's log entry, $6 the error.
UPDATE webhook_deliveries
SET status = $3::webhook_delivery_status,
    next_attempt_at = CASE WHEN $3::webhook_delivery_status = 'PENDING' THEN now() + make_interval(secs => $4)
                           ELSE next_attempt_at END,
    claimed_until = NULL,
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
-- Seconds until a claim may find a delivery (0 or less: now; NULL: none pending): per enabled
-- endpoint with pending deliveries, the earliest of them, or, when attempts in flight hold
-- the endpoint at its cap ($1) or its tenant at the tenant's ($2), the earliest end of
-- their leases (an attempt that ends sooner wakes its own sender, which claims again).
WITH endpoints AS (
    SELECT n.at, f.n, f.frees,
           sum(f.n) OVER (PARTITION BY e.tenant_id) AS tenant_busy,
           min(f.frees) OVER (PARTITION BY e.tenant_id) AS tenant_frees
    FROM webhook_endpoints e
    CROSS JOIN LATERAL (
        SELECT d.next_attempt_at AS at FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id AND d.status = 'PENDING'
        ORDER BY d.next_attempt_at LIMIT 1
    ) n
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS n, min(claimed_until) AS frees FROM webhook_deliveries f
        WHERE f.endpoint_id = e.id AND f.claimed_until > now()
    ) f
    WHERE e.enabled
)
SELECT EXTRACT(EPOCH FROM min(CASE WHEN n >= $1::int THEN frees
                                   WHEN tenant_busy >= $2::int THEN tenant_frees
                                   ELSE at END) - now())::float8
FROM endpoints;

-- name: lock_webhook_secrets
SELECT id, secret, previous_secret FROM webhook_endpoints ORDER BY id FOR UPDATE;

-- name: reseal_webhook_secret
UPDATE webhook_endpoints SET secret = $2, previous_secret = $3 WHERE id = $1;
