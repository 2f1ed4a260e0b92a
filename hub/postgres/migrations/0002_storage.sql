-- Storage tuning of the write path.

-- A merge state is a few kilobytes of JSON. Past about 2 kB PostgreSQL
-- would compress it (pglz) on every update, which costs more CPU than the
-- update itself; keep rows up to a page inline and uncompressed instead.
ALTER TABLE persons SET (toast_tuple_target = 8160);

-- The outbox is a queue: rows are inserted and deleted all the time, and
-- reading the oldest rows walks past dead ones until they are vacuumed.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0.0, autovacuum_vacuum_insert_threshold = 20000);
