package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
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
// (a new schema takes the mode it is first opened with).
func checkSealing(ctx context.Context, pool *pgxpool.Pool, k *sealing.Keyring) error {
	want := ""
	if k != nil {
		want = k.Check()
	}
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
	switch {
	case got == want:
		return nil
	case got == "":
		return errors.New("opening store: the schema holds personal data in clear and cannot be opened with keys")
	case want == "":
		return errors.New("opening store: the schema is sealed; give its keys (--keys)")
	default:
		return errors.New("opening store: the keys do not match the ones the schema is sealed with")
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
