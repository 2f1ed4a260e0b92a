package socialinsurance

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pophub/pophub/internal/pgmigrate"
	"github.com/pophub/pophub/schemas/citizenid"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Task kinds.
const (
	TransferOut  = "transfer_out"
	TransferIn   = "transfer_in"
	StopBenefits = "stop_benefits"
)

// Task statuses.
const (
	StatusOpen = "open"
	StatusDone = "done"
)

// ErrNotFound is returned for a task id that does not exist.
var ErrNotFound = errors.New("task not found")

// Task is a piece of work for the bureau. A transfer's natural key is
// (ChangeID, Kind): one task per notification and kind; a stop_benefits
// task's is the person (CitizenID), whose later death notifications
// update it (ChangeID stays the first's). Its JSON, as
// GET /tasks and the complete command answer it, is {id, kind, citizen_id,
// change_id, from_region, to_region, date_of_death,
// corrected_date_of_death, changed_at, created_at, status}; changed_at is
// absent for tasks recorded before it was kept, and the dates of death
// (YYYY-MM-DD) when there is none: a transfer's, a death notification
// without one, or no correction.
type Task struct {
	ID         int64        `json:"id"`
	Kind       string       `json:"kind"`
	CitizenID  citizenid.ID `json:"citizen_id"`
	ChangeID   string       `json:"change_id"`
	Version    int64        `json:"-"`
	FromRegion string       `json:"from_region"`
	ToRegion   string       `json:"to_region"`
	// DateOfDeath is the date of death of the person's latest death
	// notification while the task is open, and the date its completion
	// reported once done: the termination's end.
	DateOfDeath string `json:"date_of_death,omitempty"`
	// CorrectedDateOfDeath is a different date of death announced after
	// the task was completed, for the bureau to review (the hub already
	// holds the termination at DateOfDeath); "" when there is none.
	CorrectedDateOfDeath string `json:"corrected_date_of_death,omitempty"`
	// ChangedAt is when the change that caused the task took effect (the
	// notification's time); zero for tasks recorded before it was kept.
	// A stop_benefits completion takes effect at DateOfDeath instead.
	ChangedAt time.Time `json:"changed_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	Status    string    `json:"status"`
}

// Store keeps tasks and the roster in the service's own schema.
type Store struct {
	pool *pgxpool.Pool
}

// OpenStore connects to PostgreSQL with search_path set to schema and
// applies the embedded migrations. log (nil: discard) hears about them.
func OpenStore(ctx context.Context, url, schema string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing PostgreSQL URL: %w", err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pgmigrate.Apply(ctx, pool, migrations, schema, "pophub-si-migrate", log); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool; safe to call twice.
func (s *Store) Close() { s.pool.Close() }

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// change is what one notification means for the store.
type change struct {
	task        Task   // Kind "" when no task is due
	address     string // the person's new hukou address, "" if unchanged
	status      string // the person's new status, "" if unchanged
	citizenID   citizenid.ID
	version     int64
	taskCreated bool
}

// apply records a notification in one statement, hence one transaction:
// the task (if any) and the roster row (only forward in version). It
// reports whether a task was created; a repeat creates nothing.
//
// A transfer task is created once per change and kind. A stop_benefits
// task is created once per person (see migration 0003): a later death
// notification for the person (a repeat, in another region or after a
// late registration, or a corrected date of death) updates the task when
// it is newer in version, so that notifications redelivered out of order
// leave the latest. An open task takes its date of death and time; a done
// one keeps the date its completion reported and records a different one
// in corrected_date_of_death. A notification without a date of death
// changes no date.
func (s *Store) apply(ctx context.Context, c change) (bool, error) {
	const q = `WITH t AS (
	INSERT INTO tasks (kind, citizen_id, change_id, version, from_region, to_region, date_of_death, changed_at)
	SELECT $1::text, $2::text, $3::text, $4::bigint, $5::text, $6::text, $7::text, $10::timestamptz
	WHERE $1::text <> '' AND $1::text <> 'stop_benefits'
	ON CONFLICT (change_id, kind) DO NOTHING
	RETURNING true
), s AS (
	INSERT INTO tasks AS k (kind, citizen_id, change_id, version, from_region, to_region, date_of_death, changed_at)
	SELECT $1::text, $2::text, $3::text, $4::bigint, $5::text, $6::text, $7::text, $10::timestamptz
	WHERE $1::text = 'stop_benefits'
	ON CONFLICT (citizen_id) WHERE kind = 'stop_benefits' AND duplicate_of IS NULL DO UPDATE SET
		version = excluded.version,
		date_of_death = CASE WHEN k.status = 'open' AND excluded.date_of_death <> ''
			THEN excluded.date_of_death ELSE k.date_of_death END,
		changed_at = CASE WHEN k.status = 'open' AND excluded.date_of_death <> ''
			THEN coalesce(excluded.changed_at, k.changed_at) ELSE k.changed_at END,
		corrected_date_of_death = CASE
			WHEN k.status = 'open' THEN ''
			WHEN excluded.date_of_death = '' THEN k.corrected_date_of_death
			WHEN excluded.date_of_death = k.date_of_death THEN ''
			ELSE excluded.date_of_death END
	WHERE k.version < excluded.version
	RETURNING xmax = 0 AS inserted
), u AS (
	INSERT INTO persons AS p (citizen_id, version, address_code, status) VALUES ($2::text, $4::bigint, $8::text, $9::text)
	ON CONFLICT (citizen_id) DO UPDATE SET version = excluded.version,
		address_code = CASE WHEN excluded.address_code <> '' THEN excluded.address_code ELSE p.address_code END,
		status = CASE WHEN excluded.status <> '' THEN excluded.status ELSE p.status END
	WHERE p.version < excluded.version
	RETURNING 1
)
SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM s WHERE inserted), (SELECT count(*) FROM u)`
	t := c.task
	var created, updated int64
	changedAt := pgtype.Timestamptz{Time: t.ChangedAt, Valid: !t.ChangedAt.IsZero()}
	err := s.pool.QueryRow(ctx, q, t.Kind, string(c.citizenID), t.ChangeID, c.version, t.FromRegion, t.ToRegion, t.DateOfDeath,
		c.address, c.status, changedAt).Scan(&created, &updated)
	if err != nil {
		return false, fmt.Errorf("recording notification: %w", err)
	}
	return created > 0, nil
}

// upsertPerson records a snapshot person unless the roster is newer.
func (s *Store) upsertPerson(ctx context.Context, id citizenid.ID, version int64, address, status string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO persons AS p (citizen_id, version, address_code, status) VALUES ($1, $2, $3, $4)
		ON CONFLICT (citizen_id) DO UPDATE SET version = excluded.version, address_code = excluded.address_code, status = excluded.status
		WHERE p.version < excluded.version`, string(id), version, address, status)
	if err != nil {
		return fmt.Errorf("recording snapshot person: %w", err)
	}
	return nil
}

// Task list limits: a page holds DefaultTaskLimit tasks unless the caller
// asks for up to MaxTaskLimit.
const (
	DefaultTaskLimit = 1000
	MaxTaskLimit     = 10000
)

// TaskFilter selects tasks; zero fields match everything.
type TaskFilter struct {
	Status    string
	CitizenID citizenid.ID
	// Corrected selects the tasks with a corrected date of death: a
	// different date announced after completion.
	Corrected bool
	After     int64 // id to continue after
	Limit     int   // default DefaultTaskLimit
}

const taskColumns = `id, kind, citizen_id, change_id, version, from_region, to_region, date_of_death, corrected_date_of_death, changed_at, created_at, status`

func scanTask(row pgx.CollectableRow) (Task, error) {
	var t Task
	var id string
	var changedAt pgtype.Timestamptz
	err := row.Scan(&t.ID, &t.Kind, &id, &t.ChangeID, &t.Version, &t.FromRegion, &t.ToRegion, &t.DateOfDeath, &t.CorrectedDateOfDeath, &changedAt, &t.CreatedAt, &t.Status)
	t.CitizenID = citizenid.ID(id)
	if changedAt.Valid {
		t.ChangedAt = changedAt.Time
	}
	return t, err
}

// Tasks lists tasks in id order, at most f.Limit of them: the next page
// starts after the last one's id.
func (s *Store) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultTaskLimit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks
		WHERE ($1 = '' OR status = $1) AND ($2 = '' OR citizen_id = $2) AND id > $3
			AND (NOT $5 OR corrected_date_of_death <> '')
		ORDER BY id LIMIT $4`, f.Status, string(f.CitizenID), f.After, f.Limit, f.Corrected)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	if tasks == nil {
		tasks = []Task{}
	}
	return tasks, nil
}

// Task returns one task, or ErrNotFound.
func (s *Store) Task(ctx context.Context, id int64) (Task, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = $1`, id)
	if err != nil {
		return Task{}, fmt.Errorf("loading task: %w", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTask)
	if errors.Is(err, pgx.ErrNoRows) {
		return Task{}, ErrNotFound
	}
	if err != nil {
		return Task{}, fmt.Errorf("loading task: %w", err)
	}
	return t, nil
}

// markDone closes a task with the id of the event that reported it and
// the date of death that event reported (dateOfDeath, "" for a
// transfer). A stop_benefits task whose date a notification changed
// after the task was read keeps the reported date and the new one as its
// corrected date: the event is on its way to the hub.
func (s *Store) markDone(ctx context.Context, id int64, eventID, dateOfDeath string) error {
	_, err := s.pool.Exec(ctx, `UPDATE tasks SET status = 'done', completed_at = now(), event_id = $2,
		corrected_date_of_death = CASE WHEN date_of_death = $3 THEN '' ELSE date_of_death END, date_of_death = $3
		WHERE id = $1 AND status = 'open'`, id, eventID, dateOfDeath)
	if err != nil {
		return fmt.Errorf("marking task done: %w", err)
	}
	return nil
}
