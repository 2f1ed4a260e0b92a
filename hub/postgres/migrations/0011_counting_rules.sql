-- Counters counted by an earlier release's rules.
--
-- Releases up to 2026-12-06 counted residence permits until revoked or
-- per city code as written, and deaths from the day the certificate
-- arrived or from the latest certificate's date: the counters of a
-- schema they wrote may be off, by rules no migration can replay (only a
-- scan of every person can). This records that in hub_meta; the store
-- warns at every open while it is there, naming 'pophub stats rebuild',
-- which recounts and deletes the row. The rebuild is left to the
-- operator, as on a large store it holds ingest for minutes. A fresh
-- schema has no persons and is not marked.
INSERT INTO hub_meta (name, value)
SELECT 'counters_stale', 'counted by the rules of an earlier release: residence permits until revoked or per city code as written, deaths from the latest certificate'
WHERE EXISTS (SELECT 1 FROM persons WHERE version > 0)
ON CONFLICT (name) DO NOTHING;
