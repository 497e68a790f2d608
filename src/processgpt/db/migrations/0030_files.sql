-- Files and documents.
--
-- `files`: the metadata and access control of a stored file; its bytes are in a storage
-- backend (`storage`: 'local' or 's3') under `storage_key`, a key the server made (never from
-- a user's file name). A file belongs to a tenant and optionally to what it was uploaded to or
-- produced by: a task (`task_id`), a chat (`chat_id`), a process instance (`proc_inst_id`).
-- `created_by`: the API key prefix of the uploader, 'agent:<orchestrator>' for a file an
-- agent produced, NULL for a token's caller without a key.
--
-- `documents` (seed 001): a document a process step stored as its result, or kept for search:
-- a title and text content, optionally the file it was made from or into.

CREATE TABLE files (
    id            uuid PRIMARY KEY DEFAULT processgpt_uuid_v7(),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    content_type  text NOT NULL CHECK (content_type ~ '^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$'),
    size          bigint NOT NULL CHECK (size >= 0),
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage       text NOT NULL CHECK (storage IN ('local', 's3')),
    storage_key   text NOT NULL CHECK (length(storage_key) BETWEEN 1 AND 300),
    task_id       uuid REFERENCES todolist (id) ON DELETE SET NULL,
    chat_id       text CHECK (length(chat_id) <= 128),
    proc_inst_id  uuid,
    created_by    text CHECK (length(created_by) <= 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (storage, storage_key)
);
CREATE INDEX files_tenant_created ON files (tenant_id, created_at DESC, id DESC);
CREATE INDEX files_task ON files (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX files_chat ON files (tenant_id, chat_id) WHERE chat_id IS NOT NULL;

CREATE TABLE documents (
    id            uuid PRIMARY KEY DEFAULT processgpt_uuid_v7(),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    proc_inst_id  uuid,
    todo_id       uuid REFERENCES todolist (id) ON DELETE SET NULL,
    activity_id   text CHECK (length(activity_id) <= 200),
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    content       text NOT NULL DEFAULT '' CHECK (length(content) <= 1000000),
    file_id       uuid REFERENCES files (id) ON DELETE SET NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_tenant_created ON documents (tenant_id, created_at DESC, id DESC);
CREATE INDEX documents_proc_inst ON documents (proc_inst_id) WHERE proc_inst_id IS NOT NULL;
CREATE INDEX documents_todo ON documents (todo_id) WHERE todo_id IS NOT NULL;
