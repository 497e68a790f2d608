-- Cheaper process steps (benchmarks/process_throughput.py, benchmarks/README.md).
--
-- Every step of an instance updates its bpm_proc_inst row (state, history_seq, ...), but none
-- of the columns its six indexes read. Such an update can be HOT (no index entry written)
-- only when the row's page has room for the new version; at the default fillfactor (100) the
-- pages of new instances are full, and every step wrote six index entries. Half of each new
-- page is now left free for the updates of its rows (pages written before keep their rows).
ALTER TABLE bpm_proc_inst SET (fillfactor = 50);

-- A process task's todolist row was in two indexes led by proc_inst_id: todolist_step (unique
-- per instance, activity and activation; the steps' ON CONFLICT arbiter) and
-- todolist_proc_inst (every task of an instance). Each insert and each update of the row (its
-- claim, its end: status changes are never HOT) wrote both. todolist_step now covers every
-- row with an instance, so it serves the reads by instance too; uniqueness is unchanged (rows
-- without an activation never conflict: NULLs are distinct).
DROP INDEX todolist_step;
CREATE UNIQUE INDEX todolist_step ON todolist (proc_inst_id, activity_id, activation)
    WHERE proc_inst_id IS NOT NULL;
DROP INDEX todolist_proc_inst;

-- No statement reads events by instance (streams read a task's events by todo_id, an
-- instance's course from process_history), yet every event of a process task wrote an entry.
DROP INDEX events_proc_inst;

-- A history line belongs to its instance, in the instance's tenant: one foreign key to
-- (proc_inst_id, tenant_id) checks both, and checks that they agree; each line of every step
-- ran two checks (its instance, its tenant) before.
CREATE UNIQUE INDEX bpm_proc_inst_tenant_key ON bpm_proc_inst (proc_inst_id, tenant_id);
ALTER TABLE process_history
    DROP CONSTRAINT process_history_proc_inst_id_fkey,
    DROP CONSTRAINT process_history_tenant_id_fkey,
    ADD CONSTRAINT process_history_instance_fkey FOREIGN KEY (proc_inst_id, tenant_id)
        REFERENCES bpm_proc_inst (proc_inst_id, tenant_id) ON DELETE CASCADE;
