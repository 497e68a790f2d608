-- Listing a tenant's tasks newest first without a status filter (the API's default view)
-- reads this index in order instead of sorting all of the tenant's tasks.
CREATE INDEX todolist_tenant_created ON todolist (tenant_id, created_at DESC, id DESC);
