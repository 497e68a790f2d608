-- Chats (WebSocket chat and AI SDK useChat): a chat is a tenant's conversation with one agent;
-- each user message is a turn answered by a task. History is derived from the turns and their
-- tasks' event logs, so it is complete even when no client saw the reply.

CREATE TABLE chats (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          text NOT NULL CHECK (id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    agent_orch  text NOT NULL CHECK (agent_orch ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE chat_turns (
    tenant_id    text NOT NULL,
    chat_id      text NOT NULL,
    turn         integer NOT NULL CHECK (turn > 0),
    task_id      uuid NOT NULL REFERENCES todolist (id) ON DELETE CASCADE,
    -- The turn's events are the task's events after this seq: 0 for a new task, the seq of
    -- the human_response when the turn answered the task's question.
    after_seq    bigint NOT NULL DEFAULT 0 CHECK (after_seq >= 0),
    user_text    text NOT NULL CHECK (length(user_text) <= 100000),
    attachments  jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(attachments) = 'array'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Set when a client received the turn's end; a reconnecting client is shown a turn that
    -- ended (or still runs) without one.
    delivered_at timestamptz,
    PRIMARY KEY (tenant_id, chat_id, turn),
    FOREIGN KEY (tenant_id, chat_id) REFERENCES chats (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX chat_turns_task ON chat_turns (task_id);
