package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/schemas/citizenid"
)

// sealer applies the configured keyring to what the store writes and
// reads. With a keyring, person_key is the keyed hash of the ID and the
// three columns that hold IDs and names are sealed: persons.state and
// history.data bound to their person key (and history's version), so that
// a blob copied to another person's row does not open, and the outbox's
// lists of notifications (outbox.go). Without one (the zero value)
// everything is stored in clear as before. The address code, status,
// event metadata and the statistics counters stay clear: queries and the
// region walk need them, and they name no one.
type sealer struct{ k *sealing.Keyring }

func (z sealer) key(id citizenid.ID) string {
	if z.k == nil {
		return string(id)
	}
	return z.k.PersonKey(string(id))
}

func (z sealer) sealState(key string, st *merge.State) ([]byte, error) {
	raw, err := encodeState(st)
	if err != nil || z.k == nil {
		return raw, err
	}
	return z.k.Seal(raw, []byte(key)), nil
}

func (z sealer) openState(key string, b []byte) (*merge.State, error) {
	if z.k != nil {
		raw, err := z.k.Open(b, []byte(key))
		if err != nil {
			return nil, fmt.Errorf("opening stored state: %w", err)
		}
		b = raw
	}
	return decodeState(b)
}

func historyAD(key string, version int64) []byte {
	return strconv.AppendInt([]byte(key+"/"), version, 10)
}

func (z sealer) sealHistory(key string, version int64, data []byte) []byte {
	if z.k == nil {
		return data
	}
	return z.k.Seal(data, historyAD(key, version))
}

func (z sealer) openHistory(key string, version int64, b []byte) ([]byte, error) {
	if z.k == nil {
		return b, nil
	}
	raw, err := z.k.Open(b, historyAD(key, version))
	if err != nil {
		return nil, fmt.Errorf("opening stored history: %w", err)
	}
	return raw, nil
}

// outboxAD is what a sealed outbox list is bound to. Lists are not bound
// to their rows: one moved to another row would only change the order in
// which its notifications are published.
var outboxAD = []byte("outbox_batches")

func (z sealer) sealOutbox(list []byte) []byte {
	if z.k == nil {
		return list
	}
	return z.k.Seal(list, outboxAD)
}

func (z sealer) openOutbox(b []byte) ([]byte, error) {
	if z.k == nil {
		return b, nil
	}
	raw, err := z.k.Open(b, outboxAD)
	if err != nil {
		return nil, fmt.Errorf("opening stored notifications: %w", err)
	}
	return raw, nil
}

// openBody opens a body of a legacy outbox list (outboxLegacy).
func (z sealer) openBody(msgID string, b []byte) ([]byte, error) {
	if z.k == nil {
		return b, nil
	}
	raw, err := z.k.Open(b, []byte(msgID))
	if err != nil {
		return nil, fmt.Errorf("opening stored notification: %w", err)
	}
	return raw, nil
}

// checkSealing compares what the schema records about sealing (hub_meta
// 'sealed': empty for a schema in clear, else the keyring's check value)
// with the keyring given, recording it if the schema has no answer yet
// (a new schema takes the mode it is first opened with). A schema that
// holds no personal data yet takes the mode it is opened with again
// (resetSealing): the first opener may have been a hub that stopped
// before it wrote anything, and nothing stored depends on the mode.
func checkSealing(ctx context.Context, pool *pgxpool.Pool, k *sealing.Keyring, log *slog.Logger) error {
	want := sealingValue(k)
	// Two statements, not one: when another instance inserts the row
	// first, the INSERT waits for it to commit and does nothing, but a
	// SELECT in the same statement reads the snapshot taken before that
	// commit and finds no row. A new statement takes a new snapshot.
	if _, err := pool.Exec(ctx, `INSERT INTO hub_meta (name, value) VALUES ('sealed', $1)
		ON CONFLICT (name) DO NOTHING`, want); err != nil {
		return fmt.Errorf("recording sealing mode: %w", err)
	}
	var got string
	if err := pool.QueryRow(ctx, `SELECT value FROM hub_meta WHERE name = 'sealed'`).Scan(&got); err != nil {
		return fmt.Errorf("reading sealing mode: %w", err)
	}
	if got == want {
		return checkVersions(ctx, pool, k, true)
	}
	reset, err := resetSealing(ctx, pool, got, want)
	if err != nil {
		return err
	}
	if reset {
		log.Warn("the schema held no personal data; its sealing mode is now the one it was opened with",
			"was", sealingMode(got), "now", sealingMode(want))
		return checkVersions(ctx, pool, k, true)
	}
	return sealingMismatch(got, want)
}

// versionPrefix starts the hub_meta names under which a sealed schema
// records the fingerprint of each data-key version it was opened with
// (sealed_v1, sealed_v2, …; sealing.Keyring.VersionCheck). The HMAC check
// in 'sealed' cannot tell two copies of a key file apart that each added
// their own version 2 (`keys add`), and rows one sealed would not open
// with the other.
const versionPrefix = "sealed_v"

// readVersions reads the recorded data-key fingerprints.
func readVersions(ctx context.Context, pool *pgxpool.Pool) (map[uint32]string, error) {
	rows, err := pool.Query(ctx, `SELECT name, value FROM hub_meta WHERE starts_with(name, $1)`, versionPrefix)
	if err != nil {
		return nil, fmt.Errorf("reading data key fingerprints: %w", err)
	}
	got := make(map[uint32]string)
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading data key fingerprints: %w", err)
		}
		v, err := strconv.ParseUint(name[len(versionPrefix):], 10, 32)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading data key fingerprints: hub_meta %q: %w", name, err)
		}
		got[uint32(v)] = value
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading data key fingerprints: %w", err)
	}
	return got, nil
}

// checkVersions refuses a keyring whose data keys are not the ones the
// schema recorded (sealing.CheckVersions) and, when record is set,
// records the versions it holds that the schema has not seen. It reads
// again after recording: another instance opening the schema at the same
// time may have recorded its own key under a version first.
func checkVersions(ctx context.Context, pool *pgxpool.Pool, k *sealing.Keyring, record bool) error {
	if k == nil {
		return nil
	}
	got, err := readVersions(ctx, pool)
	if err != nil {
		return err
	}
	if err := sealing.CheckVersions(got, k); err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	if !record {
		return nil
	}
	var names, values []string
	for v, c := range k.VersionChecks() {
		if _, ok := got[v]; !ok {
			names, values = append(names, versionPrefix+strconv.FormatUint(uint64(v), 10)), append(values, c)
		}
	}
	if len(names) == 0 {
		return nil
	}
	if _, err := pool.Exec(ctx, `INSERT INTO hub_meta (name, value) SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT (name) DO NOTHING`, names, values); err != nil {
		return fmt.Errorf("recording data key fingerprints: %w", err)
	}
	return checkVersions(ctx, pool, k, false)
}

// readSealing is checkSealing for OpenExisting: it records nothing, and a
// schema that records no mode (migrated but never opened by a hub) opens
// in either.
func readSealing(ctx context.Context, pool *pgxpool.Pool, k *sealing.Keyring) error {
	want := sealingValue(k)
	var got string
	err := pool.QueryRow(ctx, `SELECT value FROM hub_meta WHERE name = 'sealed'`).Scan(&got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("reading sealing mode: %w", err)
	case got != want:
		return sealingMismatch(got, want)
	}
	return checkVersions(ctx, pool, k, false)
}

// resetLockTimeout bounds resetSealing's waits for its locks. A batch in
// flight holds them for a moment; a VACUUM or ANALYZE of a table holds
// off the table lock for as long as it runs (an anti-wraparound vacuum is
// not cancelled for a waiter), and while resetSealing waits it holds the
// mode's row, which every batch reads first.
const resetLockTimeout = 3 * time.Second

// resetSealing records want in place of got as the schema's sealing mode
// if the schema holds no person, history or pending notification, and
// reports whether it did.
//
// It first looks, without locks, whether the tables hold a row: a
// populated schema (an instance started without its key file, or with
// another) is refused there and then, taking no lock the running
// instances wait for. Only for an empty schema does it take the mode's
// row FOR UPDATE, as every batch takes it FOR KEY SHARE first
// (checkMode), so that a batch in flight is waited for and seen (the
// schema then keeps the old mode), and a batch of an instance that opened
// the schema in the old mode and has written nothing yet waits, reads the
// new mode and is refused instead of writing in the old one. The SHARE
// lock on the tables also holds off writers that do not take the row (a
// hub of an earlier version), until the mode is recorded. Both are taken
// under resetLockTimeout: the start is refused rather than holding up
// ingest behind a vacuum.
func resetSealing(ctx context.Context, pool *pgxpool.Pool, got, want string) (bool, error) {
	empty, err := schemaEmpty(ctx, pool)
	if err != nil || !empty {
		return false, err
	}
	var reset bool
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", resetLockTimeout.Milliseconds())); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM hub_meta WHERE name = 'sealed' FOR UPDATE`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE persons, history, outbox_batches IN SHARE MODE`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE hub_meta SET value = $1 WHERE name = 'sealed' AND value = $2
			AND `+emptySQL, want, got)
		if reset = err == nil && tag.RowsAffected() == 1; reset {
			// The fingerprints were the old keys'; the new ones are
			// recorded by the caller.
			_, err = tx.Exec(ctx, `DELETE FROM hub_meta WHERE starts_with(name, $1)`, versionPrefix)
		}
		return err
	})
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "55P03" {
		return false, fmt.Errorf("recording sealing mode of an empty schema: waited %s for its tables or its mode's row (a VACUUM or ANALYZE of persons, history or outbox_batches, or a long transaction, holds them; see pg_locks); start again once it is done: %w", resetLockTimeout, err)
	}
	if err != nil {
		return false, fmt.Errorf("recording sealing mode of an empty schema: %w", err)
	}
	return reset, nil
}

// emptySQL holds when the schema stores no person, history or
// notification.
const emptySQL = `NOT EXISTS (SELECT 1 FROM persons) AND NOT EXISTS (SELECT 1 FROM history)
	AND NOT EXISTS (SELECT 1 FROM outbox_batches)`

// schemaEmpty reports whether the schema stores no person, history or
// notification, stopping at the first row of each table and taking no lock
// but the ACCESS SHARE every reader takes, which a VACUUM does not block.
func schemaEmpty(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var empty bool
	if err := pool.QueryRow(ctx, `SELECT `+emptySQL).Scan(&empty); err != nil {
		return false, fmt.Errorf("looking whether the schema holds data: %w", err)
	}
	return empty, nil
}

// ErrSealingChanged is what Apply returns, wrapped, when the schema's
// sealing mode is no longer the one this Store opened it with: another
// instance opened the schema while it was still empty, in the other mode
// or with other keys, and recorded its own (resetSealing). Nothing of the
// batch is written; the instance has to be restarted in the schema's mode.
var ErrSealingChanged = errors.New("the schema's sealing mode changed since this store opened it")

// modeSQL reads the schema's sealing mode and holds it (FOR KEY SHARE,
// which only resetSealing's FOR UPDATE waits for) until the batch's
// transaction ends.
const modeSQL = `SELECT value FROM hub_meta WHERE name = 'sealed' FOR KEY SHARE`

// checkMode refuses a batch when the schema's recorded sealing mode is not
// the one s writes in. It is a batch's first statement: the mode is
// decided per batch, not only at Open, because an empty schema's mode may
// be recorded again by another instance after s opened it, and s would
// otherwise write persons in its own mode into a schema recorded as the
// other, where that instance cannot find them and s cannot reopen.
func (s *Store) checkMode(ctx context.Context, tx pgx.Tx) error {
	var got string
	err := tx.QueryRow(ctx, modeSQL).Scan(&got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Open records it; only OpenExisting on a schema no hub has
		// opened gets here.
		return errors.New("the schema records no sealing mode: no hub has opened it yet; open it with Open (start the hub on it) before writing")
	case err != nil:
		return fmt.Errorf("reading sealing mode: %w", err)
	case got == s.mode:
		return nil
	case got == "":
		return fmt.Errorf("%w: this instance seals, but another one has since recorded the still empty schema as in clear; nothing was written: restart this instance with --keys none, or stop the instances in clear and restart them with the keys", ErrSealingChanged)
	case s.mode == "":
		return fmt.Errorf("%w: this instance stores in clear, but another one has since recorded the still empty schema as sealed; nothing was written: restart this instance with that instance's key file (--keys)", ErrSealingChanged)
	default:
		return fmt.Errorf("%w: another instance has since recorded the still empty schema as sealed with other keys; nothing was written: restart this instance with that instance's key file (--keys)", ErrSealingChanged)
	}
}

// sealingValue is what hub_meta 'sealed' holds for a keyring.
func sealingValue(k *sealing.Keyring) string {
	if k == nil {
		return ""
	}
	return k.Check()
}

// sealingMode names a recorded mode for the log, without the check value.
func sealingMode(v string) string {
	if v == "" {
		return "clear"
	}
	return "sealed"
}

// sealingMismatch is the error for a schema recorded with got, opened
// with want; it says what to do.
func sealingMismatch(got, want string) error {
	switch {
	case got == "":
		return errors.New("opening store: the schema holds personal data in clear and cannot be opened with keys; open it with --keys none")
	case want == "":
		return errors.New("opening store: the schema is sealed; give its keys (--keys)")
	default:
		return errors.New("opening store: the keys do not match the ones the schema is sealed with; give the key file it was sealed with (--keys)")
	}
}

// Reseal re-encrypts, with the newest data key, the sealed values written
// with older ones, batch rows at a time (outbox rows, which hold a batch's
// notifications each, one at a time), each in a short transaction of its
// own; it returns how many values it changed (an outbox row counts its
// notifications). It is meant to run while the hub runs: persons are
// locked in key order as Apply locks them, so the two wait for each other
// but cannot deadlock, and their versions do not change, so caches stay
// valid. Every instance must run with the new key file before Reseal
// starts, or one still on the old key keeps writing old-version rows.
// progress, if not nil, is called after every batch with the table and
// the running total.
func (s *Store) Reseal(ctx context.Context, batch int, progress func(table string, n int64)) (int64, error) {
	if s.seal.k == nil {
		return 0, errors.New("resealing: the store has no keys")
	}
	if batch <= 0 {
		batch = 1000
	}
	if err := s.checkSealedVersions(ctx); err != nil {
		return 0, err
	}
	newest := binary.BigEndian.AppendUint32(nil, s.seal.k.Newest())
	var total int64
	report := func(table string, n int) {
		total += int64(n)
		if progress != nil {
			progress(table, total)
		}
	}

	// Persons, walked in key order.
	after := ""
	for {
		var n int
		var last string
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT person_key, state FROM persons
				WHERE person_key > $1 AND version > 0 AND substring(state from 2 for 4) < $2
				ORDER BY person_key LIMIT $3 FOR UPDATE`, after, newest, batch)
			if err != nil {
				return err
			}
			var keys []string
			var blobs [][]byte
			for rows.Next() {
				var k string
				var b []byte
				if err := rows.Scan(&k, &b); err != nil {
					rows.Close()
					return err
				}
				raw, err := s.seal.k.Open(b, []byte(k))
				if err != nil {
					rows.Close()
					return fmt.Errorf("opening state: %w", err)
				}
				keys, blobs = append(keys, k), append(blobs, s.seal.k.Seal(raw, []byte(k)))
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if n = len(keys); n == 0 {
				return nil
			}
			last = keys[n-1]
			_, err = tx.Exec(ctx, `UPDATE persons p SET state = u.st FROM unnest($1::text[], $2::bytea[]) AS u(k, st)
				WHERE p.person_key = u.k`, keys, blobs)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("resealing persons: %w", err)
		}
		if n == 0 {
			break
		}
		after = last
		report("persons", n)
	}

	// History, in primary key order.
	afterKey, afterVersion := "", int64(0)
	for {
		var n int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT person_key, version, data FROM history
				WHERE (person_key, version) > ($1, $2) AND substring(data from 2 for 4) < $3
				ORDER BY person_key, version LIMIT $4 FOR UPDATE`, afterKey, afterVersion, newest, batch)
			if err != nil {
				return err
			}
			var keys []string
			var versions []int64
			var blobs [][]byte
			for rows.Next() {
				var k string
				var v int64
				var b []byte
				if err := rows.Scan(&k, &v, &b); err != nil {
					rows.Close()
					return err
				}
				raw, err := s.seal.k.Open(b, historyAD(k, v))
				if err != nil {
					rows.Close()
					return fmt.Errorf("opening history: %w", err)
				}
				keys, versions = append(keys, k), append(versions, v)
				blobs = append(blobs, s.seal.k.Seal(raw, historyAD(k, v)))
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if n = len(keys); n == 0 {
				return nil
			}
			afterKey, afterVersion = keys[n-1], versions[n-1]
			_, err = tx.Exec(ctx, `UPDATE history h SET data = u.d FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS u(k, v, d)
				WHERE h.person_key = u.k AND h.version = u.v`, keys, versions, blobs)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("resealing history: %w", err)
		}
		if n == 0 {
			break
		}
		report("history", n)
	}

	// Outbox batch rows not yet published, one per transaction (a row
	// holds a batch's notifications). A row the relay is marking is waited
	// for (a short transaction); one it deletes meanwhile is passed over.
	// Rows moved from the old outbox table are rewritten in the current
	// format.
	afterBatch := int64(0)
	for {
		var n int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var b int64
			var format int16
			var value []byte
			err := tx.QueryRow(ctx, `SELECT batch, format, entries FROM outbox_batches
				WHERE batch > $1 AND (format <> $2 OR substring(entries from 2 for 4) < $3)
				ORDER BY batch LIMIT 1 FOR UPDATE`, afterBatch, outboxS2, newest).Scan(&b, &format, &value)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			entries, err := s.seal.decodeOutbox(format, value)
			if err != nil {
				return fmt.Errorf("batch row %d: %w", b, err)
			}
			if value, err = s.seal.encodeOutbox(entries); err != nil {
				return fmt.Errorf("batch row %d: %w", b, err)
			}
			afterBatch, n = b, len(entries)
			_, err = tx.Exec(ctx, `UPDATE outbox_batches SET format = $2, entries = $3 WHERE batch = $1`, b, outboxS2, value)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("resealing outbox: %w", err)
		}
		if n == 0 {
			break
		}
		report("outbox", n)
	}
	return total, nil
}

// checkSealedVersions refuses to reseal when values are sealed with a
// data-key version the keyring does not hold: Reseal passes over values
// at or above the newest version, so a keyring lacking a newer one would
// report success and leave those values unreadable to it, and values
// under an older missing version would stop it halfway.
func (s *Store) checkSealedVersions(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT v FROM (
			SELECT substring(state from 2 for 4) AS v FROM persons WHERE version > 0
			UNION SELECT substring(data from 2 for 4) FROM history
			UNION SELECT substring(entries from 2 for 4) FROM outbox_batches WHERE format = $1) AS x`, outboxS2)
	if err != nil {
		return fmt.Errorf("resealing: listing data key versions: %w", err)
	}
	defer rows.Close()
	var missing []uint32
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return fmt.Errorf("resealing: listing data key versions: %w", err)
		}
		if len(b) != 4 {
			continue
		}
		if v := binary.BigEndian.Uint32(b); !slices.Contains(s.seal.k.Versions(), v) {
			missing = append(missing, v)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("resealing: listing data key versions: %w", err)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		names := make([]string, len(missing))
		for i, v := range missing {
			names[i] = strconv.FormatUint(uint64(v), 10)
		}
		return fmt.Errorf("resealing: values are sealed with data key version %s, which the keys do not hold (held: %v); nothing was resealed: give the key file holding every version",
			strings.Join(names, ", "), s.seal.k.Versions())
	}
	return nil
}
