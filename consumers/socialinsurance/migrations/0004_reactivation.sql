-- A death can be undone: a hukou cancelled for death by mistake is
-- restored (hukou.registered, reason restored) and the hub makes the
-- person active again. The bureau then cancels the person's open
-- stop_benefits task, which completing would terminate a living person's
-- insurances: status 'cancelled', with the reason in cancel_reason, and
-- not completable. A task already done stays done and records when the
-- person became active again in reactivated_at, for the bureau to review
-- the termination the hub already holds. A later death reopens a
-- cancelled task.
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN ('open', 'done', 'cancelled'));
ALTER TABLE tasks ADD COLUMN cancel_reason text NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN reactivated_at timestamptz;

-- The version of the notification (or snapshot) the roster's status
-- comes from, and the notification's time (NULL from the snapshot): a
-- person's status follows its version alone, since other notifications
-- (a move) raise the row's version without saying anything about the
-- status. A death notification older than the status 'active' found here
-- makes its task cancelled from the start (separate consumers may hand
-- the bureau a restoration before the death it undoes).
ALTER TABLE persons ADD COLUMN status_version bigint NOT NULL DEFAULT 0;
ALTER TABLE persons ADD COLUMN status_at timestamptz;
UPDATE persons SET status_version = version WHERE status <> '';
