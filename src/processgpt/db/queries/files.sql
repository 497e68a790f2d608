-- name: insert_file
-- A stored file's row. The owner refs must be the tenant's: a task or chat of another tenant
-- (or none by that id) makes the insert return no row.
INSERT INTO files (id, tenant_id, name, content_type, size, sha256, storage, storage_key,
                   task_id, chat_id, proc_inst_id, created_by)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
WHERE ($9::uuid IS NULL OR EXISTS (SELECT 1 FROM todolist t WHERE t.id = $9 AND t.tenant_id = $2))
  AND ($10::text IS NULL OR EXISTS (SELECT 1 FROM chats c WHERE c.tenant_id = $2 AND c.id = $10))
RETURNING *;

-- name: get_file
SELECT * FROM files WHERE id = $1 AND tenant_id = $2;

-- name: get_file_any_tenant
-- Only for signed links: the signature names the tenant and is checked against this row.
SELECT * FROM files WHERE id = $1;

-- name: list_files
SELECT * FROM files
WHERE tenant_id = $1
  AND ($2::uuid IS NULL OR task_id = $2)
  AND ($3::text IS NULL OR chat_id = $3)
  AND ($4::uuid IS NULL OR proc_inst_id = $4)
  AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $7;

-- name: files_by_ids
SELECT * FROM files WHERE tenant_id = $1 AND id = ANY ($2::uuid[]) ORDER BY created_at, id;

-- name: lock_files_by_ids
-- The tenant's files among $2, locked against a concurrent delete while a task or chat
-- message that names them is written.
SELECT id FROM files WHERE tenant_id = $1 AND id = ANY ($2::uuid[]) FOR SHARE;

-- name: attach_files_to_task
-- Files uploaded without an owner become the task's; files that have one keep it.
UPDATE files SET task_id = $3
WHERE tenant_id = $1 AND id = ANY ($2::uuid[]) AND task_id IS NULL;

-- name: delete_file
DELETE FROM files WHERE id = $1 AND tenant_id = $2 RETURNING *;

-- name: existing_storage_keys
-- Which of the keys $2 of storage $1 a file row names (the orphan sweeper), through the
-- unique (storage, storage_key) index.
SELECT storage_key FROM files WHERE storage = $1 AND storage_key = ANY ($2::text[]);
