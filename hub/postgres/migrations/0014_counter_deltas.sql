-- Batches add their counter changes here, one row per changed counter,
-- instead of updating stats_counters in place. Every registration batch
-- changed the province's and the prefecture's counters of the day, so
-- each held those rows locked until it committed and the batches of all
-- partitions and instances took turns on them; rows appended here lock
-- nothing another batch needs. The store folds the rows into
-- stats_counters about every second (counterdeltas.go), and a count reads
-- both tables in one snapshot, so it is exact at every moment.
--
-- The table holds about a second of changes, unless folds are held up
-- (0015_counter_deltas_index).
CREATE TABLE stats_counter_deltas (
    region text   COLLATE "C" NOT NULL,
    class  "char" NOT NULL,
    bucket text   COLLATE "C" NOT NULL,
    n      bigint NOT NULL
);
