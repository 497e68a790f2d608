-- The worklist: open human work items (status TODO, added by 0017) of a tenant, newest first.

CREATE INDEX todolist_worklist ON todolist (tenant_id, created_at DESC, id DESC)
    WHERE status = 'TODO';
CREATE INDEX bpm_proc_inst_open ON bpm_proc_inst (tenant_id, status, start_date DESC)
    WHERE status IN ('RUNNING', 'INCIDENT');
