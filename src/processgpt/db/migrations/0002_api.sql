-- The Execution API: API keys (stored hashed) and per-tenant backpressure.

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    prefix      text NOT NULL,                -- shown to people to tell keys apart
    key_hash    bytea NOT NULL UNIQUE,        -- sha256 of the whole key; the key itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- NULL: the server's default limit applies.
ALTER TABLE tenants ADD COLUMN max_pending_tasks integer CHECK (max_pending_tasks > 0);
