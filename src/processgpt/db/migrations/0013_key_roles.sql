-- Roles (see processgpt.domain.roles): what a key may do within its tenant. Keys made before
-- roles existed could do everything a tenant can, so they become tenant admins; new keys are
-- members unless their creator says otherwise.
ALTER TABLE api_keys ADD COLUMN role text NOT NULL DEFAULT 'admin'
    CHECK (role IN ('member', 'admin', 'operator'));
ALTER TABLE api_keys ALTER COLUMN role SET DEFAULT 'member';
