-- Webhooks: fair delivery across tenants and endpoints, and secret rotation with an overlap;
-- indexes for retention's deletion of files.
--
-- claimed_until: set while an attempt is in flight (the claim's lease), cleared when the
-- attempt is recorded. The claim (queries/webhooks.sql claim_deliveries) counts an
-- endpoint's deliveries in flight through webhook_deliveries_in_flight and gives it at most
-- its cap, so one slow or failing endpoint holds a bounded number of senders; a sender
-- killed mid-attempt leaves claimed_until in the past, which counts as nothing.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until timestamptz;
CREATE INDEX webhook_deliveries_in_flight ON webhook_deliveries (endpoint_id, claimed_until)
    WHERE claimed_until IS NOT NULL;
-- The claim reads each enabled endpoint's oldest due deliveries from its own range, so a
-- backlog of one endpoint is never walked to reach another's.
CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries
    (endpoint_id, next_attempt_at, id) WHERE status = 'PENDING';
-- It replaces the index of due deliveries across endpoints: with that one the planner read an
-- endpoint's oldest delivery by walking every endpoint's in due order (it assumes deliveries
-- spread evenly over endpoints), 0.5 s per wake-up behind one endpoint's 100,000.
DROP INDEX webhook_deliveries_due;

-- previous_secret: the secret a rotation replaced (sealed like secret), still signing every
-- attempt beside the new one until previous_secret_until; NULL when there is none.
ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_until timestamptz,
    ADD CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL));

-- Retention deletes the files of the instances it deletes (queries/retention.sql), and keeps
-- a file a document names: both looked up by index (a file's deletion also sets its
-- documents' file_id to NULL through this one).
CREATE INDEX files_proc_inst ON files (proc_inst_id) WHERE proc_inst_id IS NOT NULL;
CREATE INDEX documents_file ON documents (file_id) WHERE file_id IS NOT NULL;
