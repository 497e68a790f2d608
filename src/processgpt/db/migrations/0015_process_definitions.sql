-- Process definitions are published as immutable versions.
--
-- proc_def keeps one row per (tenant, id, version): the compiled graph (`definition`, what the
-- engine walks), the source as it was sent (`format`: 'processgpt_json' or 'bpmn'; `source`:
-- the JSON text or the XML) and `source_hash` (sha256 of the canonical source, name and forms:
-- publishing the same content again returns the latest version instead of adding one).
--
-- proc_def_heads holds each definition's latest version number (0: none yet). A publish first
-- makes sure the head row exists and locks it (concurrent publishes of one id queue there, the
-- first publish of an id included), then takes the next number with one INSERT … ON CONFLICT
-- DO UPDATE … RETURNING on the head, inside the same statement that inserts the version: no
-- two publishes get the same number and none is skipped (a failed publish rolls its number
-- back).
--
-- Versions are never changed: a trigger refuses UPDATE of proc_def (deleting a tenant still
-- removes its definitions).

ALTER TABLE proc_def
    ADD COLUMN format      text NOT NULL DEFAULT 'processgpt_json'
        CHECK (format IN ('processgpt_json', 'bpmn')),
    ADD COLUMN source      text NOT NULL DEFAULT '',
    ADD COLUMN source_hash text NOT NULL DEFAULT '';

ALTER TABLE proc_def
    ADD CONSTRAINT proc_def_id_check
        CHECK (length(id) BETWEEN 1 AND 128 AND id ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$') NOT VALID;

CREATE TABLE proc_def_heads (
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              text NOT NULL,
    latest_version  integer NOT NULL CHECK (latest_version >= 0),
    PRIMARY KEY (tenant_id, id)
);

INSERT INTO proc_def_heads (tenant_id, id, latest_version)
SELECT tenant_id, id, max(version) FROM proc_def GROUP BY tenant_id, id;

CREATE FUNCTION proc_def_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'process definition versions are immutable (% version %)', OLD.id, OLD.version
        USING ERRCODE = 'check_violation';
END;
$$;

CREATE TRIGGER proc_def_immutable BEFORE UPDATE ON proc_def
    FOR EACH ROW EXECUTE FUNCTION proc_def_immutable();
