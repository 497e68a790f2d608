-- name: process_stream_state
-- A process instance and the state of each of its tasks, in creation order, in one read:
-- what GET /v1/processes/{id}/stream polls. No row: no such instance for this tenant; one
-- row with a NULL id: an instance without tasks. driven: an instance the engine advances
-- (it has engine state), as opposed to the one-task form.
SELECT p.status::text AS proc_status, p.state IS NOT NULL AS driven,
       p.current_activity_ids,
       t.id, t.status::text AS status, t.last_seq, t.agent_orch, t.activity_id,
       t.activity_name, t.attempts, t.output, t.error
FROM bpm_proc_inst p
LEFT JOIN todolist t ON t.proc_inst_id = p.proc_inst_id AND t.tenant_id = p.tenant_id
WHERE p.proc_inst_id = $1 AND p.tenant_id = $2
ORDER BY t.created_at, t.id;
