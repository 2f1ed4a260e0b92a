-- The completion's event as first published, saved before publishing: its
-- id, the termination's end ('' for a transfer) and when it takes effect.
-- A completion that published but did not mark the task done (a crash, the
-- database away) is at the hub already, which keeps the first payload of
-- an event id: the retry re-sends exactly this event, whatever date of
-- death arrived since, and the task reports what the hub holds, a
-- different current date becoming its corrected_date_of_death. NULL (and
-- '') when no completion is in flight; marking the task done clears them.
ALTER TABLE tasks ADD COLUMN publishing_event_id text;
ALTER TABLE tasks ADD COLUMN publishing_end text NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN publishing_at timestamptz;
