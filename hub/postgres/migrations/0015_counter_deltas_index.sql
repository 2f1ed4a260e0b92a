-- Counts read the pending counter changes of their regions by this index,
-- as they read the counters by theirs: while a backlog of changes drains
-- (folds held up by a lock on the counters), a count of one region no
-- longer reads every other region's pending changes. Each batch pays one
-- index entry per changed counter, which BenchmarkApply does not tell
-- apart from its noise.
CREATE INDEX stats_counter_deltas_key ON stats_counter_deltas (region COLLATE "C", class, bucket COLLATE "C");
