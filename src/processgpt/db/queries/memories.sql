-- Memory items, their history and uses (db/memories.py). Every statement is tenant-scoped.

-- name: memory_insert
-- A new item, or NULL when a live item with the same content already exists in that scope
-- (the caller then reads that one: memory_find_duplicate).
INSERT INTO memories (tenant_id, agent, proc_def_id, activity_id, user_id, kind, content,
                      original, content_hash, embedding, embedding_model, terms, status, pinned,
                      source, source_task_id, source_feedback_id, valid_from, valid_to,
                      expires_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::vector, $11,
        to_tsvector('english', $12) || to_tsvector('simple', $22),
        $13, $14, $15, $16, $17, COALESCE($18, now()), $19, $20, $21)
ON CONFLICT (tenant_id, agent, proc_def_id, activity_id, user_id, content_hash)
    WHERE status IN ('proposed', 'active') DO NOTHING
RETURNING *;

-- name: memory_find_duplicate
SELECT * FROM memories
WHERE tenant_id = $1 AND agent IS NOT DISTINCT FROM $2 AND proc_def_id IS NOT DISTINCT FROM $3
  AND activity_id IS NOT DISTINCT FROM $4 AND user_id IS NOT DISTINCT FROM $5
  AND content_hash = $6 AND status IN ('proposed', 'active');

-- name: memory_history_add
INSERT INTO memory_history (tenant_id, memory_id, actor, action, reason, before, after)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb);

-- name: memory_get
SELECT * FROM memories WHERE tenant_id = $1 AND id = $2;

-- name: memory_get_for_update
SELECT * FROM memories WHERE tenant_id = $1 AND id = $2 FOR UPDATE;

-- name: memory_list
-- Filters are optional (NULL: any). `scope_exact` compares the scope columns as given
-- (NULL matches only NULL) instead of ignoring NULL filters.
SELECT * FROM memories
WHERE tenant_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR agent = $3)
  AND ($4::text IS NULL OR proc_def_id = $4)
  AND ($5::text IS NULL OR activity_id = $5)
  AND ($6::text IS NULL OR user_id = $6)
  AND ($7::text IS NULL OR kind = $7)
  AND ($8::boolean IS NULL OR pinned = $8)
  AND ($9::text IS NULL OR source = $9)
  AND ($10::uuid IS NULL OR id < $10)
ORDER BY id DESC
LIMIT $11;

-- name: memory_update
UPDATE memories SET
    kind = $3, content = $4, original = $5, content_hash = $6,
    embedding = CASE WHEN $14 THEN $7::text::vector ELSE embedding END,
    embedding_model = CASE WHEN $14 THEN $8 ELSE embedding_model END,
    terms = to_tsvector('english', $9) || to_tsvector('simple', $15),
    pinned = $10, valid_from = $11, valid_to = $12, expires_at = $13, updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING *;

-- name: memory_set_status
UPDATE memories SET status = $3, superseded_by = $4, updated_at = now()
WHERE tenant_id = $1 AND id = $2 AND status = ANY ($5::text[])
RETURNING *;

-- name: memory_delete_scope
-- Bulk delete (status 'deleted') of the live items of exactly this scope (NULL columns match
-- only NULL: deleting an agent's items leaves the tenant-wide ones), with a history row each.
WITH gone AS (
    UPDATE memories SET status = 'deleted', updated_at = now()
    WHERE tenant_id = $1 AND agent IS NOT DISTINCT FROM $2
      AND proc_def_id IS NOT DISTINCT FROM $3 AND activity_id IS NOT DISTINCT FROM $4
      AND user_id IS NOT DISTINCT FROM $5 AND status IN ('proposed', 'active')
    RETURNING id, status
), logged AS (
    INSERT INTO memory_history (tenant_id, memory_id, actor, action, reason, after)
    SELECT $1, id, $6, 'deleted', $7, jsonb_build_object('status', 'deleted') FROM gone
)
SELECT count(*) FROM gone;

-- name: memory_history_list
SELECT * FROM memory_history WHERE tenant_id = $1 AND memory_id = $2 ORDER BY id;

-- name: memory_iterative_scan
-- Filtered HNSW scans continue until enough rows pass the filter (pgvector 0.8): a selective
-- scope loses nothing. Custom plans always: a generic plan cannot know whether the scope is
-- selective (an index on the scope) or not (the HNSW index). Inside the search's transaction.
SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.ef_search', $1::text, true),
       set_config('plan_cache_mode', 'force_custom_plan', true);

-- name: memory_search
-- Hybrid retrieval inside the task's scope (full text: $7 the query's words, read with the
-- 'english' configuration, $14 its Hangul bigrams, read with 'simple'): the nearest items by cosine distance (those with
-- similarity >= $8) and the best full-text matches, fused by reciprocal rank (k = 60).
-- $9 / $10 switch the vector / full-text side on. Expired, not-yet-valid and no-longer-valid
-- items never come back.
WITH live AS MATERIALIZED (SELECT now() AS t),
qv AS MATERIALIZED (SELECT $6::text::vector AS v),
vec AS (
    SELECT v.id, 1 - v.dist AS sim, row_number() OVER (ORDER BY v.dist) AS r
    FROM (
        SELECT m.id, m.embedding <=> (SELECT v FROM qv) AS dist
        FROM memories m
        WHERE $9 AND m.status = 'active' AND m.tenant_id = $1
          AND m.embedding_model = $11
          AND (m.agent IS NULL OR m.agent = $2)
          AND (m.proc_def_id IS NULL OR m.proc_def_id = $3)
          AND (m.activity_id IS NULL OR m.activity_id = $4)
          AND (m.user_id IS NULL OR m.user_id = $5)
          AND (m.expires_at IS NULL OR m.expires_at > (SELECT t FROM live))
          AND m.valid_from <= (SELECT t FROM live)
          AND (m.valid_to IS NULL OR m.valid_to > (SELECT t FROM live))
        ORDER BY dist
        LIMIT $12
    ) v
    WHERE 1 - v.dist >= $8
),
q AS MATERIALIZED (
    SELECT replace(plainto_tsquery('english', $7)::text, ' & ', ' | ')::tsquery
        || replace(plainto_tsquery('simple', $14)::text, ' & ', ' | ')::tsquery AS query
),
fts AS (
    SELECT f.id, row_number() OVER (ORDER BY f.rank DESC, f.id) AS r
    FROM (
        SELECT m.id, ts_rank_cd(m.terms, q.query) AS rank
        FROM memories m, q
        WHERE $10 AND q.query::text <> '' AND m.terms @@ q.query
          AND m.status = 'active' AND m.tenant_id = $1
          AND (m.agent IS NULL OR m.agent = $2)
          AND (m.proc_def_id IS NULL OR m.proc_def_id = $3)
          AND (m.activity_id IS NULL OR m.activity_id = $4)
          AND (m.user_id IS NULL OR m.user_id = $5)
          AND (m.expires_at IS NULL OR m.expires_at > (SELECT t FROM live))
          AND m.valid_from <= (SELECT t FROM live)
          AND (m.valid_to IS NULL OR m.valid_to > (SELECT t FROM live))
        ORDER BY rank DESC
        LIMIT $12
    ) f
),
fused AS (
    SELECT COALESCE(vec.id, fts.id) AS id,
           COALESCE(1.0 / (60 + vec.r), 0) + COALESCE(1.0 / (60 + fts.r), 0) AS score,
           vec.sim
    FROM vec FULL JOIN fts ON vec.id = fts.id
    ORDER BY score DESC
    LIMIT $13
)
SELECT m.*, fused.score::float8 AS score, fused.sim::float8 AS similarity
FROM fused JOIN memories m ON m.id = fused.id
ORDER BY fused.score DESC, m.id;

-- name: memory_any_active
-- Whether the tenant has any active item (a task of a tenant without memory embeds nothing).
SELECT EXISTS (SELECT 1 FROM memories WHERE tenant_id = $1 AND status = 'active');

-- name: memory_pinned
-- The pinned active items a task's scope covers, newest first.
SELECT m.* FROM memories m
WHERE m.tenant_id = $1 AND m.status = 'active' AND m.pinned
  AND (m.agent IS NULL OR m.agent = $2)
  AND (m.proc_def_id IS NULL OR m.proc_def_id = $3)
  AND (m.activity_id IS NULL OR m.activity_id = $4)
  AND (m.user_id IS NULL OR m.user_id = $5)
  AND (m.expires_at IS NULL OR m.expires_at > now())
  AND m.valid_from <= now() AND (m.valid_to IS NULL OR m.valid_to > now())
ORDER BY m.id DESC
LIMIT $6;

-- name: memory_uses_add
INSERT INTO memory_uses (tenant_id, task_id, memory_id, how, rank, score)
SELECT $1, $2, u.memory_id, u.how, u.rank, u.score
FROM unnest($3::uuid[], $4::text[], $5::int[], $6::float8[]) AS u(memory_id, how, rank, score)
ON CONFLICT (task_id, memory_id, how) DO NOTHING;

-- name: memory_uses_of_task
SELECT u.memory_id, u.how, u.rank, u.score, u.at, m.content
FROM memory_uses u JOIN memories m ON m.id = u.memory_id
WHERE u.tenant_id = $1 AND u.task_id = $2
ORDER BY u.how, u.rank;

-- name: memory_stale_embeddings
-- Live items embedded by another model (or not at all), claimed for re-embedding. The range
-- conditions around $1 (not IS DISTINCT FROM) let memories_embedding_model answer "none" at
-- once. FOR NO KEY UPDATE: a task recording that it used an item (a foreign key's KEY SHARE
-- lock) never waits for a re-embedding batch; SKIP LOCKED: workers take different batches.
SELECT id, tenant_id, content FROM memories
WHERE status IN ('proposed', 'active')
  AND (embedding_model IS NULL OR embedding_model < $1 OR embedding_model > $1)
LIMIT $2
FOR NO KEY UPDATE SKIP LOCKED;

-- name: memory_set_embeddings
-- The claimed items' new vectors ($2: pgvector text forms, in the order of $1), fenced on
-- the model so a batch applied twice changes nothing the second time.
UPDATE memories m SET embedding = u.embedding::vector, embedding_model = $3
FROM unnest($1::uuid[], $2::text[]) AS u(id, embedding)
WHERE m.id = u.id AND m.embedding_model IS DISTINCT FROM $3
RETURNING m.id, m.tenant_id;

-- name: memory_stale_count
-- How many live items wait for re-embedding with model $1 (for tests and operators).
SELECT count(*) FROM memories
WHERE status IN ('proposed', 'active')
  AND (embedding_model IS NULL OR embedding_model < $1 OR embedding_model > $1);

-- name: memory_policy_get
-- The agent's policy, else the tenant's (NULL when neither is set).
SELECT auto_activate FROM memory_policies
WHERE tenant_id = $1 AND (agent = $2 OR agent IS NULL)
ORDER BY agent NULLS LAST
LIMIT 1;

-- name: memory_policy_set
INSERT INTO memory_policies (tenant_id, agent, auto_activate) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, agent) DO UPDATE SET auto_activate = EXCLUDED.auto_activate,
                                             updated_at = now()
RETURNING tenant_id, agent, auto_activate, updated_at;

-- name: memory_policy_list
SELECT tenant_id, agent, auto_activate, updated_at FROM memory_policies
WHERE tenant_id = $1 ORDER BY agent NULLS FIRST;
