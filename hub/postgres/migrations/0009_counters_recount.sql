-- Counters of a schema whose persons predate them.
--
-- 0004_stats made stats_counters empty, also on a schema that already
-- held persons (a store of a release before the counters), and nothing
-- counted those persons: every count read zero, or only the changes
-- written since. This records in hub_meta that the counters must be
-- recounted from the persons; the store does so when it opens, before it
-- serves a count, and deletes the row in the same transaction
-- (recountIfAsked in stats.go). Recorded when the schema holds persons
-- and
--   - no counter at all, or
--   - history applied before 0004_stats was, when 0004_stats came in a
--     later run than the first migration (a schema made with counters
--     applies 0001 to 0004 in one run, within moments): the persons
--     predate the counters, which hold at most the changes written
--     since, unless 'pophub stats rebuild' has been run since (then the
--     recount is only repeated).
-- A fresh schema has no persons, and a schema made with counters stops
-- at the first tests, so neither scans history.
DO $$
DECLARE
    counted timestamptz;
    created timestamptz;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM persons WHERE version > 0) THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM stats_counters) THEN
        INSERT INTO hub_meta (name, value) VALUES ('counters_recount', 'persons without counters');
        RETURN;
    END IF;
    SELECT applied_at INTO counted FROM schema_migrations WHERE version = '0004_stats';
    SELECT min(applied_at) INTO created FROM schema_migrations;
    IF counted <= created + interval '1 minute' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM history WHERE applied_at < counted) THEN
        INSERT INTO hub_meta (name, value) VALUES ('counters_recount', 'history older than the counters');
    END IF;
END $$;
