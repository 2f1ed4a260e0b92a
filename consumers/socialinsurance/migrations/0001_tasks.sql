-- Tasks for the bureau's clerks, one per notification that needs work.
-- (change_id, kind) is the natural key: a notification delivered twice,
-- or again after a crash, finds its task already there.
CREATE TABLE tasks (
    id           bigserial PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('transfer_out', 'transfer_in', 'stop_benefits')),
    citizen_id   text        NOT NULL,
    change_id    text        NOT NULL,
    version      bigint      NOT NULL,
    from_region  text        NOT NULL DEFAULT '',
    to_region    text        NOT NULL DEFAULT '',
    date_of_death text       NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    status       text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    completed_at timestamptz,
    event_id     text,
    UNIQUE (change_id, kind)
);
CREATE INDEX tasks_status ON tasks (status, id);
CREATE INDEX tasks_citizen ON tasks (citizen_id, id);

-- The roster: the persons registered in the region as far as the bureau
-- knows, from the hub's snapshot and kept current by the notifications.
-- Comparing it with the insured list finds the dead still paid (应销未销).
CREATE TABLE persons (
    citizen_id   text   PRIMARY KEY,
    version      bigint NOT NULL,
    address_code text   NOT NULL DEFAULT '',
    status       text   NOT NULL DEFAULT ''
);
