-- name: ensure_proc_def_head
-- The definition's head row, made if missing (numbering after any version already present).
-- A concurrent first publish waits here until the other one commits or rolls back.
INSERT INTO proc_def_heads (tenant_id, id, latest_version)
VALUES ($1, $2, COALESCE((SELECT max(version) FROM proc_def WHERE tenant_id = $1 AND id = $2), 0))
ON CONFLICT (tenant_id, id) DO NOTHING;

-- name: lock_proc_def_head
-- The definition's latest version number (0: none), locked until the transaction ends.
SELECT latest_version FROM proc_def_heads WHERE tenant_id = $1 AND id = $2 FOR UPDATE;

-- name: insert_proc_def_version
-- The next version of the definition, numbered and inserted in one statement (see migration
-- 0015).
WITH head AS (
    INSERT INTO proc_def_heads AS h (tenant_id, id, latest_version)
    VALUES ($1, $2, COALESCE((SELECT max(version) FROM proc_def
                              WHERE tenant_id = $1 AND id = $2), 0) + 1)
    ON CONFLICT (tenant_id, id) DO UPDATE SET latest_version = h.latest_version + 1
    RETURNING latest_version
)
INSERT INTO proc_def (tenant_id, id, version, name, definition, format, source, source_hash)
SELECT $1, $2, head.latest_version, $3, $4, $5, $6, $7 FROM head
RETURNING id, version, name, format, source_hash, created_at;

-- name: get_proc_def_version
SELECT id, version, name, format, source_hash, created_at, definition, source
FROM proc_def WHERE tenant_id = $1 AND id = $2 AND version = $3;

-- name: get_latest_proc_def
SELECT id, version, name, format, source_hash, created_at, definition, source
FROM proc_def WHERE tenant_id = $1 AND id = $2 ORDER BY version DESC LIMIT 1;

-- name: list_proc_def_versions
SELECT id, version, name, format, source_hash, created_at
FROM proc_def WHERE tenant_id = $1 AND id = $2 ORDER BY version;

-- name: list_latest_proc_defs
-- The latest version of each of the tenant's definitions, by id, after $2 (a page of $3).
SELECT DISTINCT ON (id) id, version, name, format, source_hash, created_at
FROM proc_def WHERE tenant_id = $1 AND id > $2
ORDER BY id, version DESC
LIMIT $3;

-- name: upsert_form_def
INSERT INTO form_def (id, tenant_id, proc_def_id, html, fields_json)
VALUES ($2, $1, $3, $4, $5)
ON CONFLICT (tenant_id, id) DO UPDATE
SET proc_def_id = EXCLUDED.proc_def_id, html = EXCLUDED.html, fields_json = EXCLUDED.fields_json;

-- name: get_form_def
SELECT id, proc_def_id, html, fields_json FROM form_def WHERE tenant_id = $1 AND id = $2;

-- name: existing_forms
SELECT id FROM form_def WHERE tenant_id = $1 AND id = ANY($2::text[]);

-- name: existing_proc_defs
SELECT DISTINCT id FROM proc_def WHERE tenant_id = $1 AND id = ANY($2::text[]);
