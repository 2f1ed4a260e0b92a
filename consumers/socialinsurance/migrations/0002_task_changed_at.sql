-- When the change that caused a task took effect: the notification's time
-- (the move's, or the death's). Completing the task reports it to the hub
-- as of then, so the golden record follows the order of the moves, not the
-- order in which bureaus complete their tasks. Tasks recorded before this
-- column existed keep NULL; for them the time the bureau recorded the
-- notification stands in (see Event).
ALTER TABLE tasks ADD COLUMN changed_at timestamptz;
