-- One outbox row per applied batch instead of one per notification.
--
-- A batch of 2,000 events makes about 3,000 notifications, 1.2 MB of JSON
-- that repeats itself. As rows of their own they cost a COPY, index
-- entries, the relay's SELECT and DELETE and vacuuming, and PostgreSQL pays
-- by the byte. A batch row holds the batch's notifications as one list
-- (outbox.go), S2-compressed to about a tenth; notification i of batch row
-- b has the sequence number b << 20 | i. published lists the indexes
-- JetStream has acknowledged; the row is deleted once all have been.
--
-- Every hub instance on a schema must run this version: an older one would
-- still write to the old table, which is gone.
CREATE SEQUENCE outbox_batch_seq;

CREATE TABLE outbox_batches (
    batch      bigint      PRIMARY KEY,
    size       integer     NOT NULL,
    -- 1: the S2-compressed list, sealed as a whole when the schema is
    -- sealed; 0: moved here from the old table below, uncompressed, each
    -- body as it was stored there.
    format     smallint    NOT NULL,
    entries    bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    published  integer[]   NOT NULL DEFAULT '{}'
);

-- Already compressed: keep PostgreSQL from trying again.
ALTER TABLE outbox_batches ALTER COLUMN entries SET STORAGE EXTERNAL;

-- Rows are updated and deleted all the time; vacuum them early.
ALTER TABLE outbox_batches SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 200);

-- An older instance still running commits its batches to the old table:
-- wait for those in flight and keep any more out until the old table is
-- gone, so that none is committed after the copy below and dropped with
-- the table. (Its next batch then fails; it must be stopped.)
LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE;

-- Notifications pending at the upgrade move over in their order, up to
-- 10,000 to a row, as a format 0 list: for each notification its subject,
-- msg_id, body and trace context (JSON, empty for none), each a 4-byte
-- big-endian length and the bytes.
INSERT INTO outbox_batches (batch, size, format, entries, created_at)
SELECT g + 1, count(*), 0,
    string_agg(int4send(octet_length(convert_to(subject, 'UTF8'))) || convert_to(subject, 'UTF8')
        || int4send(octet_length(convert_to(msg_id, 'UTF8'))) || convert_to(msg_id, 'UTF8')
        || int4send(octet_length(body)) || body
        || int4send(octet_length(convert_to(coalesce(trace::text, ''), 'UTF8'))) || convert_to(coalesce(trace::text, ''), 'UTF8'),
        ''::bytea ORDER BY seq),
    min(created_at)
FROM (SELECT *, (row_number() OVER (ORDER BY seq) - 1) / 10000 AS g FROM outbox) AS o
GROUP BY g;

SELECT setval('outbox_batch_seq', coalesce((SELECT max(batch) FROM outbox_batches), 0) + 1, false);

DROP TABLE outbox;
