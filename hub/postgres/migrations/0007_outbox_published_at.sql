-- Acknowledged notifications stay in the outbox for the relay's republish
-- window instead of leaving with their last acknowledgement.
--
-- A NATS server that fsyncs only every two minutes (JetStream's default)
-- loses what it acknowledged last when it stops hard, and a hub that
-- stops at the same moment (a power loss) must still know what to publish
-- again when both come back. So a row whose notifications have all been
-- acknowledged stays until the relay deletes it, once its last
-- acknowledgement is older than the window; on every start the relay
-- publishes again the acknowledged notifications still here, and
-- JetStream drops those it kept by Nats-Msg-Id.
--
-- published_at is when the row's published list last grew (NULL: not
-- yet). Kept rows never count as pending: the pending count is still
-- size - cardinality(published).
ALTER TABLE outbox_batches ADD COLUMN published_at timestamptz;

-- The relay reads the rows with notifications left to publish, which the
-- kept rows would otherwise precede.
CREATE INDEX outbox_batches_pending ON outbox_batches (batch) WHERE cardinality(published) < size;
