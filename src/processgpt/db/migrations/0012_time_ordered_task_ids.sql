-- Task ids are UUID version 7 (RFC 9562): a millisecond timestamp, then random bits. Tasks
-- created close together get neighbouring ids, and a claim takes tasks in age order, so a
-- batch of claimed tasks shares a few leaf pages of the primary key and of the event log's
-- (todo_id, seq) key instead of touching a page per task. With random (version 4) ids the
-- claim and the batch write of a no-op task cost Postgres about a third more CPU.
-- Postgres 18 has uuidv7(); on older servers the same layout is built from a random UUID.
DO $$
BEGIN
    IF to_regprocedure('pg_catalog.uuidv7()') IS NOT NULL THEN
        CREATE FUNCTION processgpt_uuid_v7() RETURNS uuid
            LANGUAGE sql VOLATILE PARALLEL SAFE AS 'SELECT pg_catalog.uuidv7()';
    ELSE
        -- The first 6 bytes become the Unix time in milliseconds; bits 52 and 53 turn the
        -- version nibble from 4 (0100) into 7 (0111); the variant bits stay as they are.
        CREATE FUNCTION processgpt_uuid_v7() RETURNS uuid
            LANGUAGE sql VOLATILE PARALLEL SAFE AS $f$
            SELECT encode(
                set_bit(set_bit(
                    overlay(uuid_send(gen_random_uuid())
                            PLACING substring(int8send(
                                floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                            FROM 1 FOR 6),
                    52, 1), 53, 1),
                'hex')::uuid
        $f$;
    END IF;
END $$;

ALTER TABLE todolist ALTER COLUMN id SET DEFAULT processgpt_uuid_v7();
