-- A key's prefix names it to people (`processgpt keys list`) and to `keys revoke`, so within
-- a tenant it must name one key. Prefixes are 32 random bits; creating a key draws another
-- on the rare collision. The unique index also serves lookups by tenant.
CREATE UNIQUE INDEX api_keys_tenant_prefix ON api_keys (tenant_id, prefix);
DROP INDEX api_keys_tenant;
