-- Golden records, their history and the notification outbox.

-- persons holds one row per person. person_key is the storage key: the
-- citizen ID today, a keyed hash of it once IDs are kept only encrypted.
-- state is the mergeable state (hub/merge), from which the golden record
-- is derived; address_code and status are copies for queries.
CREATE TABLE persons (
    person_key   text        PRIMARY KEY,
    version      bigint      NOT NULL,
    address_code text        NOT NULL DEFAULT '',
    status       text        NOT NULL,
    state        bytea       NOT NULL,
    updated_at   timestamptz NOT NULL
) WITH (fillfactor = 80);

-- history holds every applied event; (source, event_id) is the
-- idempotency key.
CREATE TABLE history (
    person_key text        NOT NULL,
    version    bigint      NOT NULL,
    source     text        NOT NULL,
    event_id   text        NOT NULL,
    type       text        NOT NULL,
    time       timestamptz NOT NULL,
    applied_at timestamptz NOT NULL,
    sections   text[]      NOT NULL,
    data       bytea       NOT NULL,
    PRIMARY KEY (person_key, version),
    CONSTRAINT history_idempotency UNIQUE (source, event_id)
);

-- outbox holds notifications committed with their change until the relay
-- has published them; then they are deleted.
CREATE TABLE outbox (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject    text        NOT NULL,
    msg_id     text        NOT NULL,
    body       bytea       NOT NULL,
    trace      jsonb,
    created_at timestamptz NOT NULL
);
