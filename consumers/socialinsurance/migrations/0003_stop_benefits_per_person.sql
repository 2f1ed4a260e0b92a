-- One stop_benefits task per person. The hub announces a death again (a
-- late registration, a repeat in another region, a corrected date of
-- death), each time under a new change_id; the repeats update the
-- person's task instead of adding one.
--
-- Earlier releases made a task per death notification. Of a person's
-- stop_benefits tasks recorded then, the first (lowest id) becomes the
-- person's task; the others name it in duplicate_of, keep their status,
-- and are left out of the rule.
ALTER TABLE tasks ADD COLUMN duplicate_of bigint REFERENCES tasks (id);
UPDATE tasks t SET duplicate_of = f.id
FROM (SELECT DISTINCT ON (citizen_id) citizen_id, id FROM tasks WHERE kind = 'stop_benefits' ORDER BY citizen_id, id) f
WHERE t.kind = 'stop_benefits' AND t.citizen_id = f.citizen_id AND t.id <> f.id;
CREATE UNIQUE INDEX tasks_stop_benefits_person ON tasks (citizen_id) WHERE kind = 'stop_benefits' AND duplicate_of IS NULL;

-- A date of death announced after the task was completed, when it differs
-- from the date the completion reported (date_of_death): the hub already
-- holds the termination, and a second one for an earlier date would not
-- outrank it, so the task is neither reopened nor repeated; the bureau
-- finds here the persons whose benefits to review (paid past the
-- corrected date, or stopped too early). '' when there is none.
ALTER TABLE tasks ADD COLUMN corrected_date_of_death text NOT NULL DEFAULT '';
