-- Each write of a person's row and each outbox row carries the identity
-- of the transaction that wrote it (a random number), which the store's
-- caches check before they use what they hold: the merge state of a
-- person this process wrote or read (stateCache), and the outbox row the
-- relay read in part. A version, or an outbox row's number, names one
-- content only along one history of the database: after a failover to a
-- standby that lacks the primary's last transactions, other writes take
-- the same versions, and outbox_batch_seq gives the same numbers again,
-- so a cache checked by version or number alone served what the database
-- no longer held, and wrote it back.
--
-- ADD COLUMN with a constant default rewrites no row; rows written
-- before have 0, which no cache entry holds but for rows read as they
-- are.
ALTER TABLE persons ADD COLUMN write_id bigint NOT NULL DEFAULT 0;
ALTER TABLE outbox_batches ADD COLUMN write_id bigint NOT NULL DEFAULT 0;
