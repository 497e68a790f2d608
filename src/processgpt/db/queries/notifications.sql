-- Who a notification is for: $u a person, $r a role (both NULL: every notification). A
-- person's inbox: what is addressed to them, to their role, and to everyone.

-- name: list_notifications
SELECT id, user_id, role, type, todo_id, proc_inst_id, message, data, read_at, created_at
FROM notifications
WHERE tenant_id = $1
  AND (($2::text IS NULL AND $3::text IS NULL) OR user_id = $2 OR role = $3
       OR (user_id IS NULL AND role IS NULL))
  AND (NOT $4 OR read_at IS NULL)
  AND ($5::bigint IS NULL OR id < $5)
ORDER BY id DESC
LIMIT $6;

-- name: mark_notification_read
UPDATE notifications SET read_at = coalesce(read_at, now())
WHERE tenant_id = $1 AND id = $2
RETURNING id, user_id, role, type, todo_id, proc_inst_id, message, data, read_at, created_at;

-- name: mark_notifications_read
WITH marked AS (
    UPDATE notifications SET read_at = now()
    WHERE tenant_id = $1 AND read_at IS NULL
      AND (($2::text IS NULL AND $3::text IS NULL) OR user_id = $2 OR role = $3
           OR (user_id IS NULL AND role IS NULL))
    RETURNING 1
)
SELECT count(*) FROM marked;

-- name: notifications_horizon
-- Where a stream that starts now begins: every transaction before this is finished.
SELECT pg_snapshot_xmin(pg_current_snapshot())::text;

-- name: notifications_after
-- The stream's next page after the cursor ($2 xid, $3 id): only rows of transactions older
-- than every running one (a running one may still commit rows that sort before them).
SELECT id, user_id, role, type, todo_id, proc_inst_id, message, data, read_at, created_at, xid::text AS xid_text
FROM notifications
WHERE tenant_id = $1 AND (xid, id) > ($2::text::xid8, $3)
  AND xid < pg_snapshot_xmin(pg_current_snapshot())
  AND (($4::text IS NULL AND $5::text IS NULL) OR user_id = $4 OR role = $5
       OR (user_id IS NULL AND role IS NULL))
ORDER BY xid, id
LIMIT $6;

-- name: notifications_held
-- Whether committed rows after the cursor wait for an older transaction to finish.
SELECT EXISTS (
    SELECT 1 FROM notifications
    WHERE tenant_id = $1 AND (xid, id) > ($2::text::xid8, $3)
      AND xid >= pg_snapshot_xmin(pg_current_snapshot())
);
