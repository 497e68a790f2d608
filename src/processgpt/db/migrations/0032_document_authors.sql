-- Documents say who stored them, as files do: the API key prefix or token subject of the
-- caller ('key:<prefix>', 'jwt:<sub>'), or 'agent:<orchestrator>' for a step's agent.
ALTER TABLE documents
    ADD COLUMN created_by text CHECK (length(created_by) <= 200);
