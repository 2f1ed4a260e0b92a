-- Counters counted by an earlier release's rules, again.
--
-- Releases up to 2026-12-07 kept counting a residence permit after its
-- holder's hukou moved into the permit's city, counted a permit issued
-- there, and counted one issued under a province's code in no city. As
-- 0016 does, this marks a schema holding persons so that the store warns
-- at every open, naming 'pophub stats rebuild', until a rebuild recounts
-- every person; a mark left by an earlier migration keeps its reason, with
-- this one added.
INSERT INTO hub_meta (name, value)
SELECT 'counters_stale', 'counted by the rules of an earlier release: permits of settled holders counted'
WHERE EXISTS (SELECT 1 FROM persons WHERE version > 0)
ON CONFLICT (name) DO UPDATE SET value = hub_meta.value || '; permits of settled holders counted';
