package socialinsurance

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pophub/pophub/consumers/sdk"
	"github.com/pophub/pophub/internal/pgmigrate"
	"github.com/pophub/pophub/schemas"
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

// Task statuses. A cancelled task is a stop_benefits task that must not
// be completed: its person became active again (a hukou restored after a
// cancellation for death), and completing it would terminate a living
// person's insurances; or their hukou moved out of the region on or
// before the death, so the bureau of the county they moved to holds the
// insurance relationship and stops the benefits. Complete refuses it
// (ErrTaskCancelled). A death newer than the restoration reopens a
// cancelled or done task, and a move back into the region before the
// death reopens the task the move out cancelled (see Store.apply).
const (
	StatusOpen      = "open"
	StatusDone      = "done"
	StatusCancelled = "cancelled"
)

// ErrNotFound is returned for a task id that does not exist.
var ErrNotFound = errors.New("task not found")

// ErrTaskCancelled is returned for completing a cancelled task.
var ErrTaskCancelled = errors.New("task cancelled")

// Task is a piece of work for the bureau. A transfer's natural key is
// (ChangeID, Kind): one task per notification and kind; a stop_benefits
// task's is the person (CitizenID), whose later death notifications
// update it (ChangeID stays the first's, except that a death reopening a
// done or cancelled task gives it that death's, so that its completion's
// event id, derived from ChangeID, is not the first completion's, which
// the hub would ignore as applied). Its JSON, as
// GET /tasks and the complete command answer it, is {id, kind, citizen_id,
// change_id, from_region, to_region, date_of_death,
// corrected_date_of_death, changed_at, created_at, status, cancel_reason,
// reactivated_at, moved_out_at}; changed_at is absent for tasks recorded before it was
// kept, the dates of death (YYYY-MM-DD) when there is none: a transfer's,
// a death notification without one, or no correction; cancel_reason
// unless the task is cancelled, reactivated_at unless the person became
// active again, and moved_out_at unless they moved out of the region
// before the death.
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
	// the task's completion was published, for the bureau to review (the
	// hub already holds the termination at DateOfDeath); "" when there is
	// none.
	CorrectedDateOfDeath string `json:"corrected_date_of_death,omitempty"`
	// ChangedAt is when the change that caused the task took effect (the
	// notification's time); zero for tasks recorded before it was kept.
	// A stop_benefits completion takes effect at DateOfDeath instead.
	ChangedAt time.Time `json:"changed_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	Status    string    `json:"status"`
	// CancelReason says why a cancelled task was cancelled; "" for the
	// others.
	CancelReason string `json:"cancel_reason,omitempty"`
	// ReactivatedAt is when the person of a stop_benefits task became
	// active again (the status notification's time): set on the task it
	// cancelled, and on a done task, whose termination the hub already
	// holds, for the bureau to review (re-enrol the person). Zero when
	// the person did not, or when their death was recorded after the
	// restoration (the task is then cancelled from the start), and again
	// once a death newer than the reactivation reopens the task.
	ReactivatedAt time.Time `json:"reactivated_at,omitzero"`
	// MovedOutAt is when the person of a stop_benefits task moved out of
	// the region on or before the death (the changed_at of the latest
	// transfer_out not after the latest death announced, in the hub's
	// order: by time, then source and event id; with no transfer_in after
	// it): one insurance relationship is held in one place, and the hub
	// announces the death again in the county they moved to, whose bureau
	// stops the benefits. Set on the open task it cancelled, and on a
	// done one, whose termination the hub already holds, for the bureau
	// to review (migration 0007). Zero when the person's hukou was in the
	// region at the death, as far as the bureau's transfer tasks tell.
	MovedOutAt time.Time `json:"moved_out_at,omitzero"`
	// inFlight is the completion published but not yet marked done
	// (migration 0006); nil when none.
	inFlight *publication
}

// publication is what a completion's event carries that a later
// notification could change in the task: its id (from the change_id), the
// termination's end ("" for a transfer) and when it takes effect. It is
// saved before the event is published, so that a retry after a crash
// re-sends that event rather than one rebuilt from the task as it is
// then: the hub keeps the first payload of an event id.
type publication struct {
	eventID string
	end     string
	at      time.Time
}

// retryable reports whether a completion of the task began (its event
// saved, perhaps published) without marking it done: it must be finished,
// re-sent and marked done, even if the task was cancelled since, as the
// hub may hold the termination already.
func (t Task) retryable() bool { return t.inFlight != nil }

// Store keeps tasks and the roster in the service's own schema.
type Store struct {
	pool *pgxpool.Pool
	// taskDrawn, nil but in tests, is called inside apply's transaction
	// after the statements of a notification giving a task, before commit.
	taskDrawn func(pgx.Tx, change)
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
	task    Task   // Kind "" when no task is due
	address string // the person's new hukou address, "" if unchanged
	status  string // the person's new status, "" if unchanged
	// reactivated is set when the person became active again: their
	// stop_benefits task is cancelled, or flagged when done.
	reactivated bool
	// at is when the change took effect (the notification's time): the
	// address's, and the reactivation's.
	at time.Time
	// key orders a move or a death among the changes of its time as the
	// hub does (orderKey); "" when the notification does not tell: a
	// death the hub announces again under another event.
	key       string
	citizenID citizenid.ID
	version   int64
}

// none reports whether the notification needs nothing recorded: a
// section change other than a reactivation.
func (c change) none() bool {
	return c.task.Kind == "" && c.address == "" && c.status == "" && !c.reactivated
}

// applied is what recording a notification did.
type applied struct {
	created   bool    // a task was created
	cancelled int64   // open tasks cancelled by a reactivation
	flagged   []int64 // done tasks flagged by a reactivation
	// movedOut are the stop_benefits tasks whose person turned out to
	// have moved out of the region before the death: cancelled (open
	// ones) or flagged (done ones) by this notification.
	movedOut []movedOut
	// movedBack counts stop_benefits tasks a move back into the region
	// before the death reopened or unflagged.
	movedBack int64
}

// movedOut is a stop_benefits task settled by a move out of the region
// before the death: its id and status after (cancelled, or done and
// flagged).
type movedOut struct {
	id     int64
	status string
}

// orderKey is how the hub orders an event among those of the same time
// (merge.Stamp.After): by source, then an event id of publisher.EventID's
// versioned form (schemas.VersionedEventID) after any other, then by
// event id. Keys compare byte by byte (COLLATE "C" in SQL): '/' sorts
// before every byte of a source name, so a source that is a prefix of
// another sorts first, as in Go. "" (unknown) for an id PostgreSQL cannot
// store.
func orderKey(src schemas.Source, eventID string) string {
	if strings.IndexByte(eventID, 0) >= 0 {
		return ""
	}
	v := "0"
	if schemas.VersionedEventID(eventID) {
		v = "1"
	}
	return string(src) + "/" + v + eventID
}

// reasonReactivated is why a stop_benefits task is cancelled when its
// person became active again.
const reasonReactivated = "the person is active again (hukou restored) after the death: completing the task would terminate a living person's insurances"

// reasonMovedOut is why a stop_benefits task is cancelled when its person
// moved out of the region before the death, formatted (SQL format) with
// the county moved to.
const reasonMovedOut = "the hukou moved to %s on or before the death: the death is announced there, and that county's bureau, which holds the insurance relationship, stops the benefits"

// apply records a notification in one transaction: the task (if any),
// the reactivation (if any) and the roster row in one statement, then,
// for a notification giving a task, the stop_benefits task's standing
// against the moves (settleMovedOut). A repeat changes nothing more. The
// transaction holds a lock on the person (an advisory lock), so that a
// death and a move handled at once by consumers per filter each see the
// other's task. A notification giving a task also takes the lock on task
// ids (lockTaskIDs), after the person's.
//
// A transfer task is created once per change and kind. A stop_benefits
// task is created once per person (see migration 0003): a later death
// notification for the person (a repeat, in another region or after a
// late registration, or a corrected date of death) updates the task when
// it is newer in version, so that notifications redelivered out of order
// leave the latest. An open task takes its date of death and time; a done
// one keeps the date its completion reported and records a different one
// in corrected_date_of_death. A notification without a date of death
// changes no date. Whatever the task's status, it takes the death's time
// and order (death_at, death_key: migration 0008), which settleMovedOut
// compares the moves with: the hub compares them with its latest death.
// A death announced again under another event at the same time keeps the
// order known (the same death, as far as the bureau can tell).
//
// A reactivation newer in version than the person's stop_benefits tasks
// cancels the open ones and flags the done ones with reactivated_at (see
// migration 0004); it takes the tasks' version, so that a redelivered
// older death changes nothing, while a newer death reopens the task: a
// cancelled one, and a done one too (reopenDone), since the bureau may
// have re-enrolled the person after reviewing it, and those benefits must
// be stopped again. Reopening a done task makes it open with the new
// death's date and time, clears reactivated_at, corrected_date_of_death
// and the completion (event_id, completed_at), and gives it the new
// death's change_id: the completion's event id derives from change_id,
// and the first completion's id would be dropped by the hub as already
// applied; reopening a cancelled task gives it the new change_id too and
// sets aside a completion left in flight (reopenCancelled). It stays the
// person's one task rather than a second row, which
// the one-task-per-person index (migration 0003) would refuse. A death
// older than the roster's status 'active' creates its task cancelled, as
// that reactivation would have, with its version and time, and leaves a
// done task as it is: consumers per filter may hand the bureau the
// restoration first.
//
// The roster row takes the status of a notification newer in version
// than its status, and the address of a move not older in time than its
// address's (migration 0005): the hub's address is the latest move's,
// not the latest notification's. An address whose time is unknown (from
// the snapshot) gives way to any newer version.
func (s *Store) apply(ctx context.Context, c change) (applied, error) {
	t := c.task
	var created, updated int64
	var res applied
	changedAt := pgtype.Timestamptz{Time: t.ChangedAt, Valid: !t.ChangedAt.IsZero()}
	at := pgtype.Timestamptz{Time: c.at, Valid: !c.at.IsZero()}
	key := pgtype.Text{String: c.key, Valid: c.key != ""}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock(hashtext('pophub-si-person'), hashtext($1))`, string(c.citizenID))
		if t.Kind != "" {
			b.Queue(lockTaskIDs)
		}
		b.Queue(applyQuery, t.Kind, string(c.citizenID), t.ChangeID, c.version, t.FromRegion, t.ToRegion, t.DateOfDeath,
			c.address, c.status, changedAt, c.reactivated, at, reasonReactivated, key)
		if t.Kind != "" {
			b.Queue(settleMovedOut, string(c.citizenID), reasonReactivated, reasonMovedOut)
		}
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if t.Kind != "" {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if err := br.QueryRow().Scan(&created, &res.cancelled, &res.flagged, &updated); err != nil {
			return err
		}
		if t.Kind == "" {
			return br.Close()
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var id int64
		var status string
		var moved bool
		if _, err := pgx.ForEachRow(rows, []any{&id, &status, &moved}, func() error {
			if moved {
				res.movedOut = append(res.movedOut, movedOut{id: id, status: status})
			} else {
				res.movedBack++
			}
			return nil
		}); err != nil {
			return err
		}
		if err := br.Close(); err != nil {
			return err
		}
		if s.taskDrawn != nil {
			s.taskDrawn(tx, c)
		}
		return nil
	})
	if err != nil {
		return applied{}, fmt.Errorf("recording notification: %w", err)
	}
	res.created = created > 0
	return res, nil
}

// lockTaskIDs makes task ids commit in the order they are drawn, so that a
// client reading new tasks as they arrive (GET /tasks after the last id
// it saw) misses none: apply takes it before the statement drawing the id
// (from the bigserial) and holds it until commit, so a task's id is drawn
// only once every lower id is committed or rolled back (a gap). It is
// taken after the person's lock, never before (no deadlock), one per
// schema (the tasks table's); its first key keeps it apart from the
// person locks.
const lockTaskIDs = `SELECT pg_advisory_xact_lock(hashtext('pophub-si-task-ids'), hashtext(current_schema()))`

// applyQuery records a notification's task, reactivation and roster row
// (see Store.apply).
const applyQuery = `WITH t AS (
	INSERT INTO tasks (kind, citizen_id, change_id, version, from_region, to_region, date_of_death, changed_at, changed_key)
	SELECT $1::text, $2::text, $3::text, $4::bigint, $5::text, $6::text, $7::text, $10::timestamptz, $14::text
	WHERE $1::text <> '' AND $1::text <> 'stop_benefits'
	ON CONFLICT (change_id, kind) DO NOTHING
	RETURNING true
), s AS (
	INSERT INTO tasks AS k (kind, citizen_id, change_id, version, from_region, to_region, date_of_death, changed_at,
		death_at, death_key, status, cancel_reason, reactivated_at)
	SELECT $1::text, $2::text, $3::text, coalesce(a.status_version, $4::bigint), $5::text, $6::text, $7::text, $10::timestamptz,
		$10::timestamptz, $14::text,
		CASE WHEN a.citizen_id IS NULL THEN 'open' ELSE 'cancelled' END, CASE WHEN a.citizen_id IS NULL THEN '' ELSE $13::text END,
		a.status_at
	FROM (SELECT 1) one LEFT JOIN persons a
		ON a.citizen_id = $2::text AND a.status = 'active' AND a.status_version > $4::bigint
	WHERE $1::text = 'stop_benefits'
	ON CONFLICT (citizen_id) WHERE kind = 'stop_benefits' AND duplicate_of IS NULL DO UPDATE SET
		version = excluded.version,
		change_id = CASE WHEN ` + reopenDone + ` OR ` + reopenCancelled + ` THEN excluded.change_id ELSE k.change_id END,
		publishing_event_id = CASE WHEN ` + reopenCancelled + ` THEN NULL ELSE k.publishing_event_id END,
		publishing_end = CASE WHEN ` + reopenCancelled + ` THEN '' ELSE k.publishing_end END,
		publishing_at = CASE WHEN ` + reopenCancelled + ` THEN NULL ELSE k.publishing_at END,
		event_id = CASE WHEN ` + reopenDone + ` THEN NULL ELSE k.event_id END,
		completed_at = CASE WHEN ` + reopenDone + ` THEN NULL ELSE k.completed_at END,
		status = CASE WHEN k.status = 'done' AND NOT ` + reopenDone + ` THEN k.status ELSE excluded.status END,
		cancel_reason = CASE WHEN k.status = 'done' AND NOT ` + reopenDone + ` THEN k.cancel_reason ELSE excluded.cancel_reason END,
		reactivated_at = CASE WHEN k.status = 'done' AND NOT ` + reopenDone + ` THEN k.reactivated_at ELSE excluded.reactivated_at END,
		date_of_death = CASE WHEN ` + reopenDone + ` OR ` + reopenBySnapshot + ` THEN excluded.date_of_death
			WHEN k.status <> 'done' AND excluded.date_of_death <> '' THEN excluded.date_of_death ELSE k.date_of_death END,
		changed_at = CASE WHEN ` + reopenBySnapshot + ` THEN NULL
			WHEN ` + reopenDone + ` OR (k.status <> 'done' AND excluded.date_of_death <> '')
			THEN coalesce(excluded.changed_at, k.changed_at) ELSE k.changed_at END,
		death_at = CASE WHEN ` + reopenBySnapshot + ` THEN NULL ELSE coalesce(excluded.death_at, k.death_at, k.changed_at) END,
		death_key = CASE WHEN ` + reopenBySnapshot + ` THEN NULL
			WHEN excluded.death_at IS NULL OR (excluded.death_key IS NULL AND excluded.death_at = k.death_at)
			THEN k.death_key ELSE excluded.death_key END,
		corrected_date_of_death = CASE
			WHEN k.status <> 'done' OR ` + reopenDone + ` THEN ''
			WHEN excluded.date_of_death = '' THEN k.corrected_date_of_death
			WHEN excluded.date_of_death = k.date_of_death THEN ''
			ELSE excluded.date_of_death END
	WHERE k.version < excluded.version OR ` + reopenBySnapshot + `
	RETURNING xmax = 0 AS inserted
), r AS (
	UPDATE tasks k SET version = $4::bigint,
		status = CASE WHEN k.status = 'open' THEN 'cancelled' ELSE k.status END,
		cancel_reason = CASE WHEN k.status = 'open' THEN $13::text ELSE k.cancel_reason END,
		reactivated_at = coalesce($12::timestamptz, now())
	WHERE $11::bool AND k.citizen_id = $2::text AND k.kind = 'stop_benefits' AND k.version < $4::bigint
	RETURNING k.id, k.status
), u AS (
	INSERT INTO persons AS p (citizen_id, version, address_code, address_at, status, status_version, status_at)
	VALUES ($2::text, $4::bigint, $8::text, CASE WHEN $8::text <> '' THEN $12::timestamptz END,
		$9::text, CASE WHEN $9::text <> '' THEN $4::bigint ELSE 0 END, CASE WHEN $9::text <> '' THEN $12::timestamptz END)
	ON CONFLICT (citizen_id) DO UPDATE SET version = greatest(p.version, excluded.version),
		address_code = CASE WHEN ` + newerAddress + ` THEN excluded.address_code ELSE p.address_code END,
		address_at = CASE WHEN ` + newerAddress + ` THEN excluded.address_at ELSE p.address_at END,
		status = CASE WHEN ` + newerStatus + ` THEN excluded.status ELSE p.status END,
		status_version = CASE WHEN ` + newerStatus + ` THEN excluded.status_version ELSE p.status_version END,
		status_at = CASE WHEN ` + newerStatus + ` THEN excluded.status_at ELSE p.status_at END
	WHERE p.version < excluded.version OR ` + newerAddress + ` OR ` + newerStatus + `
	RETURNING 1
)
SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM s WHERE inserted),
	(SELECT count(*) FROM r WHERE status = 'cancelled'),
	coalesce((SELECT array_agg(id ORDER BY id) FROM r WHERE status = 'done'), '{}'),
	(SELECT count(*) FROM u)`

// settleMovedOut sets a person's ($1) stop_benefits task against the
// person's moves across the region's boundary, the transfer tasks: one
// insurance relationship is held in one place, and a person whose hukou
// was outside the region when they died (the latest transfer not after
// the death is a transfer_out) died in the county they moved to, where
// the hub announces the death again. The task then records that move's
// time in moved_out_at: an open task is cancelled with the reason $3
// (formatted with the county), a done one stays done, flagged for
// review, and a cancelled one stays cancelled. A move is "on or before
// the death" as the hub orders them when it announces the death again:
// by time (the transfer's changed_at against the latest death
// notification's, death_at, also once the task is done; a task recorded
// before death_at was kept has its changed_at), and at the same time by
// source, then event id (changed_key against death_key, orderKey). When
// either key is unknown (a death announced again under another event, or
// a task recorded before the keys were kept), a move at the death's time
// counts as after it, as it always is against a certified death: a
// public_security event sorts after a health one. A task whose person
// was in the region at the death (no transfer before it, or a
// transfer_in last) clears moved_out_at, and the task the move out
// cancelled opens again, unless its person became active again since
// (reactivated_at), which keeps it cancelled for that reason ($2); a
// task cancelled for a reactivation alone keeps its reason. It depends
// only on the tasks, not on the order they were recorded in, so the move
// and the death in either order, repeated or not, settle the task alike.
// It answers the tasks it changed: id, status and whether moved out.
//
// The SET expressions read the task's row as it is when updated, so a
// completion marking it done in between (markDone, which takes no lock)
// is kept and flagged rather than overwritten.
const settleMovedOut = `WITH w AS (
	SELECT k.id, m.changed_at AS moved_at, m.to_region
	FROM tasks k LEFT JOIN LATERAL (
		SELECT x.kind, x.to_region, x.changed_at FROM tasks x
		WHERE x.citizen_id = k.citizen_id AND x.kind IN ('transfer_out', 'transfer_in')
			AND (x.changed_at < coalesce(k.death_at, k.changed_at)
				OR (x.changed_at = coalesce(k.death_at, k.changed_at) AND x.changed_key COLLATE "C" <= k.death_key COLLATE "C"))
		ORDER BY x.changed_at DESC, x.changed_key COLLATE "C" DESC NULLS LAST, x.version DESC, x.id DESC LIMIT 1
	) m ON m.kind = 'transfer_out'
	WHERE k.citizen_id = $1::text AND k.kind = 'stop_benefits' AND k.duplicate_of IS NULL
)
UPDATE tasks t SET moved_out_at = w.moved_at,
	status = CASE WHEN t.status = 'open' AND w.moved_at IS NOT NULL THEN 'cancelled'
		WHEN ` + movedCancelled + ` AND w.moved_at IS NULL AND t.reactivated_at IS NULL THEN 'open'
		ELSE t.status END,
	cancel_reason = CASE WHEN (t.status = 'open' OR ` + movedCancelled + `) AND w.moved_at IS NOT NULL THEN format($3::text, w.to_region)
		WHEN ` + movedCancelled + ` AND w.moved_at IS NULL AND t.reactivated_at IS NULL THEN ''
		WHEN ` + movedCancelled + ` AND w.moved_at IS NULL THEN $2::text
		ELSE t.cancel_reason END
FROM w
WHERE t.id = w.id AND (t.moved_out_at IS DISTINCT FROM w.moved_at OR (t.status = 'open' AND w.moved_at IS NOT NULL))
RETURNING t.id, t.status, t.moved_out_at IS NOT NULL`

// movedCancelled: over t, a stop_benefits task cancelled by a move out of
// the region before the death (settleMovedOut), not by a reactivation
// ($2, the reactivation's reason).
const movedCancelled = `(t.status = 'cancelled' AND t.moved_out_at IS NOT NULL AND t.cancel_reason <> $2::text)`

// reopenDone: over k (a person's stop_benefits task) and excluded (a
// newer death notification's), the death reopens a done task whose
// person became active again (reactivated_at) before it: excluded is
// 'open' only when no status 'active' newer than the death stands in the
// roster, and the task took the reactivation's version, which the death
// outranks.
const reopenDone = `(k.status = 'done' AND k.reactivated_at IS NOT NULL AND excluded.status = 'open')`

// reopenCancelled: a newer death reopens a task a restoration cancelled
// under the new death's change_id, setting aside a completion left in
// flight before the cancellation: re-sending that one would send the
// first death's event id, which the hub has applied or drops, and the
// benefits re-enrolled after the restoration would never be stopped.
const reopenCancelled = `(k.status = 'cancelled' AND excluded.status = 'open')`

// reopenBySnapshot: a death a start-over bootstrap found (Handler's
// missedDeath, change_id snapshot.…) reopens the task a restoration ended
// (cancelled, or done and flagged), at the roster's version before it, so
// that the death's own notification, when it still comes, gives it its
// date; its date and time of death are unknown until then.
const reopenBySnapshot = `(excluded.change_id LIKE 'snapshot.%' AND (k.status = 'cancelled' OR (k.status = 'done' AND k.reactivated_at IS NOT NULL)))`

// The roster's rules, over p (the row) and excluded (the notification's).
const (
	// newerAddress: an address replaces none, and otherwise one of an
	// older move; one of unknown time (the snapshot's, or recorded before
	// times were kept) gives way to a newer version, and a move at the
	// same time to a newer version.
	newerAddress = `(excluded.address_code <> '' AND (p.address_code = '' OR CASE
		WHEN p.address_at IS NULL OR excluded.address_at IS NULL THEN p.version < excluded.version
		ELSE excluded.address_at > p.address_at OR (excluded.address_at = p.address_at AND p.version < excluded.version) END))`
	// newerStatus: a status replaces one of an older version.
	newerStatus = `(excluded.status <> '' AND p.status_version < excluded.status_version)`
)

// upsertPerson records a snapshot person unless the roster is newer. The
// snapshot is the hub's record at its version: it replaces the address
// and the status, and the address's time is unknown.
func (s *Store) upsertPerson(ctx context.Context, id citizenid.ID, version int64, address, status string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO persons AS p (citizen_id, version, address_code, status, status_version) VALUES ($1, $2, $3, $4, $2)
		ON CONFLICT (citizen_id) DO UPDATE SET version = excluded.version, address_code = excluded.address_code, address_at = NULL,
			status = excluded.status, status_version = excluded.version, status_at = NULL
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
	// Reactivated selects the tasks whose person became active again
	// (ReactivatedAt set): the cancelled ones, and the done ones to
	// review.
	Reactivated bool
	// MovedOut selects the tasks whose person moved out of the region
	// before the death (MovedOutAt set): the cancelled ones, and the done
	// ones to review.
	MovedOut bool
	After    int64 // id to continue after
	Limit    int   // default DefaultTaskLimit
}

const taskColumns = `id, kind, citizen_id, change_id, version, from_region, to_region, date_of_death, corrected_date_of_death, changed_at, created_at, status,
	cancel_reason, reactivated_at, moved_out_at, publishing_event_id, publishing_end, publishing_at`

func scanTask(row pgx.CollectableRow) (Task, error) {
	var t Task
	var id string
	var changedAt, reactivatedAt, movedOutAt pgtype.Timestamptz
	var p publishingColumns
	err := row.Scan(&t.ID, &t.Kind, &id, &t.ChangeID, &t.Version, &t.FromRegion, &t.ToRegion, &t.DateOfDeath, &t.CorrectedDateOfDeath, &changedAt, &t.CreatedAt, &t.Status,
		&t.CancelReason, &reactivatedAt, &movedOutAt, &p.eventID, &p.end, &p.at)
	t.CitizenID = citizenid.ID(id)
	if changedAt.Valid {
		t.ChangedAt = changedAt.Time
	}
	if reactivatedAt.Valid {
		t.ReactivatedAt = reactivatedAt.Time
	}
	if movedOutAt.Valid {
		t.MovedOutAt = movedOutAt.Time
	}
	t.inFlight = p.publication()
	return t, err
}

// publishingColumns are a task's publishing_* columns as scanned.
type publishingColumns struct {
	eventID pgtype.Text
	end     string
	at      pgtype.Timestamptz
}

// publication is the completion in flight the columns hold, nil for none.
func (c publishingColumns) publication() *publication {
	if !c.eventID.Valid {
		return nil
	}
	return &publication{eventID: c.eventID.String, end: c.end, at: c.at.Time}
}

// Tasks lists tasks in id order, at most f.Limit of them: the next page
// starts after the last one's id.
func (s *Store) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultTaskLimit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+taskColumns+` FROM tasks
		WHERE ($1 = '' OR status = $1) AND ($2 = '' OR citizen_id = $2) AND id > $3
			AND (NOT $5 OR corrected_date_of_death <> '') AND (NOT $6 OR reactivated_at IS NOT NULL)
			AND (NOT $7 OR moved_out_at IS NOT NULL)
		ORDER BY id LIMIT $4`, f.Status, string(f.CitizenID), f.After, f.Limit, f.Corrected, f.Reactivated, f.MovedOut)
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

// errNotCompletable is beginCompletion's answer for a task that is done,
// or cancelled with no completion in flight, or gone.
var errNotCompletable = errors.New("task not completable")

// beginCompletion saves p as the completion of task id about to be
// published, unless one is in flight already, and returns the one saved:
// the first, which every retry re-sends. It refuses (errNotCompletable) a
// task done or missing since it was read, and a cancelled one unless a
// completion of it is in flight, whose event may be at the hub already.
func (s *Store) beginCompletion(ctx context.Context, id int64, p publication) (publication, error) {
	rows, err := s.pool.Query(ctx, `UPDATE tasks SET publishing_event_id = coalesce(publishing_event_id, $2),
		publishing_end = CASE WHEN publishing_event_id IS NULL THEN $3 ELSE publishing_end END,
		publishing_at = CASE WHEN publishing_event_id IS NULL THEN $4 ELSE publishing_at END
		WHERE id = $1 AND (status = 'open' OR (status = 'cancelled' AND publishing_event_id IS NOT NULL))
		RETURNING publishing_event_id, publishing_end, publishing_at`, id, p.eventID, p.end, p.at)
	if err != nil {
		return publication{}, fmt.Errorf("saving the completion before publishing: %w", err)
	}
	saved, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (publication, error) {
		var c publishingColumns
		if err := row.Scan(&c.eventID, &c.end, &c.at); err != nil {
			return publication{}, err
		}
		return *c.publication(), nil
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return publication{}, errNotCompletable
	}
	if err != nil {
		return publication{}, fmt.Errorf("saving the completion before publishing: %w", err)
	}
	return saved, nil
}

// abandonCompletion clears the completion in flight that saved eventID
// (beginCompletion) once its publication certainly failed: a task
// cancelled meanwhile is refused again, and a date announced meanwhile is
// the one the next completion reports.
func (s *Store) abandonCompletion(ctx context.Context, id int64, eventID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE tasks SET publishing_event_id = NULL, publishing_end = '', publishing_at = NULL
		WHERE id = $1 AND publishing_event_id = $2 AND status IN ('open', 'cancelled')`, id, eventID)
	if err != nil {
		return fmt.Errorf("clearing the completion that was not sent: %w", err)
	}
	return nil
}

// markDone closes a task with the id of the event that reported it and
// the date of death that event reported (dateOfDeath, "" for a
// transfer). A stop_benefits task whose date a notification changed
// after the task was read keeps the reported date and the new one as its
// corrected date: the event is on its way to the hub. Likewise a task a
// reactivation cancelled after it was read becomes done, keeping its
// reactivated_at: the termination is on its way, and the bureau must
// review it. The completion in flight (beginCompletion) is cleared: the
// task's event_id and date_of_death record it from now on.
func (s *Store) markDone(ctx context.Context, id int64, eventID, dateOfDeath string) error {
	_, err := s.pool.Exec(ctx, `UPDATE tasks SET status = 'done', completed_at = now(), event_id = $2, cancel_reason = '',
		corrected_date_of_death = CASE WHEN date_of_death = $3 THEN '' ELSE date_of_death END, date_of_death = $3,
		publishing_event_id = NULL, publishing_end = '', publishing_at = NULL
		WHERE id = $1 AND status IN ('open', 'cancelled')`, id, eventID, dateOfDeath)
	if err != nil {
		return fmt.Errorf("marking task done: %w", err)
	}
	return nil
}

// Load returns the saved position of a durable consumer (sdk.Positions).
func (s *Store) Load(ctx context.Context, consumer string) (sdk.Position, bool, error) {
	var created pgtype.Timestamptz
	var p sdk.Position
	err := s.pool.QueryRow(ctx, `SELECT stream_created, ack_floor, filter FROM positions WHERE consumer = $1`, consumer).Scan(&created, &p.AckFloor, &p.Filter)
	if errors.Is(err, pgx.ErrNoRows) {
		return sdk.Position{}, false, nil
	}
	if err != nil {
		return sdk.Position{}, false, fmt.Errorf("reading the position of consumer %s: %w", consumer, err)
	}
	if created.Valid {
		p.Stream = created.Time
	}
	return p, true, nil
}

// Save records the position of a durable consumer (sdk.Positions).
func (s *Store) Save(ctx context.Context, consumer string, p sdk.Position) error {
	created := pgtype.Timestamptz{Time: p.Stream, Valid: !p.Stream.IsZero()}
	if _, err := s.pool.Exec(ctx, `INSERT INTO positions (consumer, stream_created, ack_floor, filter) VALUES ($1, $2, $3, $4)
		ON CONFLICT (consumer) DO UPDATE SET stream_created = excluded.stream_created, ack_floor = excluded.ack_floor, filter = excluded.filter`,
		consumer, created, p.AckFloor, p.Filter); err != nil {
		return fmt.Errorf("saving the position of consumer %s: %w", consumer, err)
	}
	return nil
}

// forgetPositions deletes every saved position, so that consumers
// created from now on start from a bootstrap (Config.StartOver).
func (s *Store) forgetPositions(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM positions`)
	if err != nil {
		return 0, fmt.Errorf("forgetting the consumers' positions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// rosterStatus returns the roster's status of a person and the version
// it is from; found is false when the roster does not list them.
func (s *Store) rosterStatus(ctx context.Context, id citizenid.ID) (status string, version int64, found bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT status, status_version FROM persons WHERE citizen_id = $1`, string(id)).Scan(&status, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("reading the roster: %w", err)
	}
	return status, version, true, nil
}
