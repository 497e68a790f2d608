-- name: open_chat
-- The tenant's chat, created with agent $3 when new.
WITH ins AS (
    INSERT INTO chats (tenant_id, id, agent_orch) VALUES ($1, $2, $3)
    ON CONFLICT (tenant_id, id) DO NOTHING
    RETURNING tenant_id, id, agent_orch
)
SELECT tenant_id, id, agent_orch FROM ins
UNION ALL
SELECT tenant_id, id, agent_orch FROM chats
WHERE tenant_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM ins);

-- name: lock_chat
-- Serialises turns of one chat across API processes (held until the transaction ends).
SELECT agent_orch FROM chats WHERE tenant_id = $1 AND id = $2 FOR UPDATE;

-- name: latest_turn
SELECT c.turn, c.task_id, c.after_seq, c.delivered_at, t.status
FROM chat_turns c JOIN todolist t ON t.id = c.task_id
WHERE c.tenant_id = $1 AND c.chat_id = $2
ORDER BY c.turn DESC
LIMIT 1;

-- name: insert_turn
INSERT INTO chat_turns (tenant_id, chat_id, turn, task_id, after_seq, user_text, attachments)
SELECT $1, $2, COALESCE(max(turn), 0) + 1, $3, $4, $5, $6
FROM chat_turns WHERE tenant_id = $1 AND chat_id = $2
RETURNING turn, task_id, after_seq, delivered_at;

-- name: touch_chat
UPDATE chats SET updated_at = now() WHERE tenant_id = $1 AND id = $2;

-- name: mark_turn_delivered
UPDATE chat_turns SET delivered_at = now()
WHERE tenant_id = $1 AND chat_id = $2 AND turn = $3 AND delivered_at IS NULL;

-- name: chat_history
-- The last $3 turns, oldest first: what the user said, and what the agent answered in that
-- turn (its streamed text, the question it asked, its result). A turn's events are those of
-- its task after its after_seq, up to where the next turn (answering the same task) began.
WITH turns AS (
    SELECT c.turn, c.task_id, c.after_seq, c.user_text,
           lead(c.after_seq) OVER w AS next_after, lead(c.task_id) OVER w AS next_task
    FROM chat_turns c
    WHERE c.tenant_id = $1 AND c.chat_id = $2
    WINDOW w AS (ORDER BY c.turn)
), recent AS (
    SELECT * FROM turns ORDER BY turn DESC LIMIT $3
)
SELECT r.turn, r.user_text, t.status, t.output,
       r.next_task IS DISTINCT FROM r.task_id AS last_of_task,
       (SELECT string_agg(e.data ->> 'text', '' ORDER BY e.seq) FROM events e
        WHERE e.todo_id = r.task_id AND e.event_type = 'text_delta' AND e.seq > r.after_seq
          AND (r.next_task IS DISTINCT FROM r.task_id OR e.seq <= r.next_after)) AS text,
       (SELECT e.data FROM events e
        WHERE e.todo_id = r.task_id AND e.event_type = 'human_asked' AND e.seq > r.after_seq
          AND (r.next_task IS DISTINCT FROM r.task_id OR e.seq <= r.next_after)
        ORDER BY e.seq DESC LIMIT 1) AS asked
FROM recent r JOIN todolist t ON t.id = r.task_id AND t.tenant_id = $1
ORDER BY r.turn;

-- name: try_lock_chat_client
-- One connected client per chat, across API processes: a session-level advisory lock on the
-- API process's lock connection, keyed by tenant and chat.
SELECT pg_try_advisory_lock(hashtextextended('processgpt.chat:' || $1::text || '/' || $2::text, 0));

-- name: unlock_chat_client
SELECT pg_advisory_unlock(hashtextextended('processgpt.chat:' || $1::text || '/' || $2::text, 0));
