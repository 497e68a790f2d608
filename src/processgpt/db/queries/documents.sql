-- name: insert_document
-- A document stored through the API. $3 (task) and $2 (process instance) and $6 (file), when
-- given, must be the tenant's; a task's instance and activity are taken from the task, and an
-- instance named beside a task must be the task's. The checks come back with the row (no row
-- inserted when one fails), so the caller can say which reference was refused.
WITH task AS (
    SELECT proc_inst_id, activity_id FROM todolist WHERE id = $3 AND tenant_id = $1
), checks AS (
    SELECT ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM task)) AS task_ok,
           ($2::uuid IS NULL OR (
                EXISTS (SELECT 1 FROM bpm_proc_inst p WHERE p.proc_inst_id = $2 AND p.tenant_id = $1)
                AND ($3::uuid IS NULL OR $2 = (SELECT proc_inst_id FROM task)))) AS inst_ok,
           ($6::uuid IS NULL
                OR EXISTS (SELECT 1 FROM files f WHERE f.id = $6 AND f.tenant_id = $1)) AS file_ok
), inserted AS (
    INSERT INTO documents (tenant_id, proc_inst_id, todo_id, activity_id, title, content, file_id,
                           metadata, created_by)
    SELECT $1, COALESCE((SELECT proc_inst_id FROM task), $2), $3, (SELECT activity_id FROM task),
           $4, $5, $6, $7, $8
    FROM checks WHERE task_ok AND inst_ok AND file_ok
    RETURNING id
)
SELECT checks.task_ok, checks.inst_ok, checks.file_ok, (SELECT id FROM inserted) AS id
FROM checks;

-- name: insert_step_document
-- A document an agent stores as its task's result, fenced like every write of a run: only
-- while the attempt ($3 = the fence it claimed with) still holds the task. The instance and
-- activity are the task's; the file ($6), when given, must be the tenant's.
INSERT INTO documents (tenant_id, proc_inst_id, todo_id, activity_id, title, content, file_id,
                       metadata, created_by)
SELECT t.tenant_id, t.proc_inst_id, t.id, t.activity_id, $4, $5, $6, $7, $8
FROM todolist t
WHERE t.id = $2 AND t.tenant_id = $1 AND t.fence = $3 AND t.status = 'IN_PROGRESS'
  AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM files f WHERE f.id = $6 AND f.tenant_id = $1))
RETURNING id;

-- name: get_document
-- A document with its file's metadata (NULL when it has none, or the file was deleted).
SELECT d.id, d.tenant_id, d.proc_inst_id, d.todo_id, d.activity_id, d.title, d.content,
       length(d.content) AS content_chars, d.file_id, d.metadata, d.created_by, d.created_at,
       CASE WHEN f.id IS NULL THEN NULL ELSE to_jsonb(f) - 'storage' - 'storage_key' END AS file
FROM documents d
LEFT JOIN files f ON f.id = d.file_id AND f.tenant_id = d.tenant_id
WHERE d.id = $1 AND d.tenant_id = $2;

-- name: list_documents
-- The tenant's documents, newest first, a page at a time: no content, only its length and its
-- first characters ($7), so a page stays small whatever the documents hold.
SELECT d.id, d.tenant_id, d.proc_inst_id, d.todo_id, d.activity_id, d.title,
       left(d.content, $7) AS excerpt, length(d.content) AS content_chars, d.file_id,
       d.metadata, d.created_by, d.created_at,
       CASE WHEN f.id IS NULL THEN NULL ELSE to_jsonb(f) - 'storage' - 'storage_key' END AS file
FROM documents d
LEFT JOIN files f ON f.id = d.file_id AND f.tenant_id = d.tenant_id
WHERE d.tenant_id = $1
  AND ($2::uuid IS NULL OR d.proc_inst_id = $2)
  AND ($3::uuid IS NULL OR d.todo_id = $3)
  AND ($4::timestamptz IS NULL OR (d.created_at, d.id) < ($4, $5::uuid))
ORDER BY d.created_at DESC, d.id DESC
LIMIT $6;

-- name: delete_document
DELETE FROM documents WHERE id = $1 AND tenant_id = $2 RETURNING id;
