-- Counters counted by an earlier release's rules, again.
--
-- Releases up to 2026-12-07 did not count a person whose first hukou
-- event is a migration (a registration that predates the hub), though
-- the record takes the hukou moved to as registered. As 0011 does, this
-- marks a schema holding persons so that the store warns at every open,
-- naming 'pophub stats rebuild', until a rebuild recounts every person; a
-- mark left by 0011 keeps its reason, with this one added.
INSERT INTO hub_meta (name, value)
SELECT 'counters_stale', 'counted by the rules of an earlier release: persons known only by a migration not counted'
WHERE EXISTS (SELECT 1 FROM persons WHERE version > 0)
ON CONFLICT (name) DO UPDATE SET value = hub_meta.value || '; persons known only by a migration not counted';
