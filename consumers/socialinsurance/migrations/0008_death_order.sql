-- How the hub orders a move against a death (settleMovedOut). The hub
-- orders changes of one time by source, then by event id (one of the
-- versioned form after any other), so a move stamped at the death's very
-- time is after a certified death: public_security sorts after health.
--
-- changed_key is that order of the change a transfer task comes from, at
-- equal times: its source, '/', '1' for an event id of the versioned form
-- or '0', and the event id, compared byte by byte (COLLATE "C"). On a
-- stop_benefits task death_at and death_key are the time and order of the
-- death as of the person's latest death notification (newer in version),
-- whatever the task's status: the hub compares moves with its latest
-- death, which a corrected certificate moves, while a done task keeps the
-- changed_at its completion took effect from. death_key is NULL when the
-- notification came from another event than the death's own (the hub
-- announcing the death again under a late registration or a move carries
-- that event's source and id, with the death's time). All three are NULL
-- for tasks recorded before they existed: a stop_benefits task's
-- changed_at then stands in for death_at until its next death
-- notification. A move at the death's time with either key unknown counts
-- as after the death, as it always is against a certified death.
ALTER TABLE tasks ADD COLUMN changed_key text;
ALTER TABLE tasks ADD COLUMN death_at timestamptz;
ALTER TABLE tasks ADD COLUMN death_key text;
