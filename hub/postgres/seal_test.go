package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// openSealedStore opens a store with keys on a schema.
func openSealedStore(t testing.TB, schema string, k *sealing.Keyring) *Store {
	t.Helper()
	return openStoreWith(t, Config{Schema: schema, Keys: k})
}

func TestConformanceSealed(t *testing.T) {
	k := storetest.Keyring(t, storetest.Keys(t))
	storetest.Run(t, func(t *testing.T) hub.Store { return openSealedStore(t, testenv.Schema(t), k) })
}

// dump returns every value of every table of the store's schema, byte
// columns as raw bytes and the others as text, as a dump would hold them.
func dump(t testing.TB, s *Store) []byte {
	t.Helper()
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", s.cfg.Schema)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, table := range tables {
		rows, err := s.pool.Query(ctx, "SELECT * FROM "+pgx.Identifier{table}.Sanitize())
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out = append(out, b...)
				} else {
					out = fmt.Appendf(out, "%v", v)
				}
				out = append(out, '\n')
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// oldVersionRows counts the sealed values not on the newest key.
func oldVersionRows(t testing.TB, s *Store) int {
	t.Helper()
	newest := []byte{byte(s.seal.k.Newest() >> 24), byte(s.seal.k.Newest() >> 16), byte(s.seal.k.Newest() >> 8), byte(s.seal.k.Newest())}
	var n int
	err := s.pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM persons WHERE substring(state from 2 for 4) <> $1) +
		(SELECT count(*) FROM history WHERE substring(data from 2 for 4) <> $1) +
		(SELECT coalesce(sum(size), 0) FROM outbox_batches WHERE format <> $2 OR substring(entries from 2 for 4) <> $1)`, newest, outboxS2).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNoPersonalDataAtRest applies the events of a marked person and
// looks for their ID and names in every column of every table: found in
// a store without keys (which shows the dump sees them), absent from a
// sealed one, before and after a key rotation.
func TestNoPersonalDataAtRest(t *testing.T) {
	ctx := context.Background()
	m := storetest.MarkedPerson(t)
	want, wantHistory := storetest.Expected(m.In), storetest.ExpectedHistory(m.In)

	clear := openTestStore(t, testenv.Schema(t))
	storetest.ApplyAll(t, clear, m.In, 50)
	if leaks := m.Leaks(dump(t, clear)); len(leaks) != len(m.Secrets()) {
		t.Fatalf("a store in clear shows %d of the %d secrets; the dump misses something", len(leaks), len(m.Secrets()))
	}

	mat := storetest.Keys(t)
	schema := testenv.Schema(t)
	s := openSealedStore(t, schema, storetest.Keyring(t, mat))
	storetest.ApplyAll(t, s, m.In, 50)
	if leaks := m.Leaks(dump(t, s)); len(leaks) > 0 {
		t.Fatalf("a sealed store holds in clear: %q", leaks)
	}
	storetest.CompareRecords(t, s, want)
	storetest.CompareHistory(t, s, wantHistory)
	pending, err := s.PendingOutbox(ctx, 0, 1<<20)
	if err != nil || len(pending) == 0 {
		t.Fatalf("pending outbox: %d entries, %v", len(pending), err)
	}
	if !strings.Contains(string(pending[0].Body), "{") {
		t.Fatalf("outbox body not opened: %q", pending[0].Body)
	}

	// Rotation: a new data key, then Reseal while the store is open.
	if err := mat.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openSealedStore(t, schema, storetest.Keyring(t, mat))
	before := oldVersionRows(t, s2)
	if before == 0 {
		t.Fatal("no value on the old key before resealing")
	}
	n, err := s2.Reseal(ctx, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(before) {
		t.Errorf("Reseal changed %d values, want %d", n, before)
	}
	if left := oldVersionRows(t, s2); left != 0 {
		t.Errorf("%d values left on the old key", left)
	}
	if n, err := s2.Reseal(ctx, 7, nil); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want nothing to do", n, err)
	}
	if leaks := m.Leaks(dump(t, s2)); len(leaks) > 0 {
		t.Fatalf("a resealed store holds in clear: %q", leaks)
	}
	storetest.CompareRecords(t, s2, want)
	storetest.CompareHistory(t, s2, wantHistory)
	after, err := s2.PendingOutbox(ctx, 0, 1<<20)
	if err != nil || !reflect.DeepEqual(after, pending) {
		t.Fatalf("outbox after resealing differs (%v)", err)
	}
	if diffs, err := s2.VerifyCounters(ctx); err != nil || len(diffs) > 0 {
		t.Fatalf("VerifyCounters after resealing: %v, %v", diffs, err)
	}
	// The records are found by ID (through the keyed hash) and walked by
	// region with their states opened.
	recs, _, err := s2.Persons(ctx, hub.PersonQuery{Region: "11", Limit: 1000})
	if err != nil || len(recs) == 0 {
		t.Fatalf("walking region 11: %d records, %v", len(recs), err)
	}
}

// TestSealingModeIsChecked opens schemas with the wrong keys or none.
func TestSealingModeIsChecked(t *testing.T) {
	ctx := context.Background()
	m := storetest.MarkedPerson(t)
	k := storetest.Keyring(t, storetest.Keys(t))
	sealed := testenv.Schema(t)
	storetest.ApplyAll(t, openSealedStore(t, sealed, k), m.In[:2], 10)
	clear := testenv.Schema(t)
	storetest.ApplyAll(t, openTestStore(t, clear), m.In[:2], 10)

	tests := []struct {
		name   string
		schema string
		keys   *sealing.Keyring
		want   string
	}{
		{"sealed without keys", sealed, nil, "is sealed"},
		{"sealed with other keys", sealed, storetest.Keyring(t, storetest.Keys(t)), "do not match"},
		{"clear with keys", clear, k, "in clear"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: tc.schema, Keys: tc.keys})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}

	// A row whose state was moved to another person does not open.
	s := openSealedStore(t, sealed, k)
	if _, err := s.pool.Exec(ctx, `INSERT INTO persons (person_key, version, address_code, status, state, updated_at)
		SELECT 'f00d', version, address_code, status, state, updated_at FROM persons WHERE person_key = $1`, k.PersonKey(string(m.ID))); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Persons(ctx, hub.PersonQuery{Limit: 10})
	if !errors.Is(err, sealing.ErrTampered) {
		t.Fatalf("listing with a moved state: %v, want ErrTampered", err)
	}
}

// TestSealingModeRecordedConcurrently: instances opening a fresh schema
// together all record or read its sealing mode. Done in one statement,
// an INSERT that met another instance's row read a snapshot without it and
// failed "no rows in result set".
func TestSealingModeRecordedConcurrently(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, testenv.Schema(t))
	const rounds, instances = 20, 8
	for round := range rounds {
		if _, err := s.pool.Exec(ctx, `DELETE FROM hub_meta WHERE name = 'sealed'`); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		errs := make(chan error, instances)
		for range instances {
			go func() {
				<-start
				errs <- checkSealing(ctx, s.pool, nil, slog.New(slog.DiscardHandler))
			}()
		}
		close(start)
		for range instances {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// TestResealWhileApplying re-seals while batches touching the same persons
// are applied: neither loses the other's writes, and nothing is left on
// the old key.
func TestResealWhileApplying(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 150, 41)
	first, second := in[:len(in)/2], in[len(in)/2:]
	mat := storetest.Keys(t)
	schema := testenv.Schema(t)
	storetest.ApplyAll(t, openSealedStore(t, schema, storetest.Keyring(t, mat)), first, 100)
	if err := mat.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	k := storetest.Keyring(t, mat)
	a, r := openSealedStore(t, schema, k), openSealedStore(t, schema, k)
	done := make(chan error, 1)
	go func() {
		_, err := r.Reseal(ctx, 5, nil)
		done <- err
	}()
	storetest.ApplyAll(t, a, second, 20)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if left := oldVersionRows(t, a); left != 0 {
		t.Errorf("%d values left on the old key", left)
	}
	storetest.CompareRecords(t, a, storetest.Expected(in))
	storetest.CompareHistory(t, a, storetest.ExpectedHistory(in))
}

// vacuumLock holds on table of schema the lock VACUUM and ANALYZE take
// (SHARE UPDATE EXCLUSIVE) until the test ends or release is called: a
// vacuumdb at night, or an anti-wraparound autovacuum, which PostgreSQL
// does not cancel for anyone waiting, runs for hours on a province's
// history.
func vacuumLock(t *testing.T, schema, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release = func() { tx.Rollback(ctx) }
	t.Cleanup(release)
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{schema, table}.Sanitize()+" IN SHARE UPDATE EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return release
}

// TestWrongSealingModeStartDoesNotHoldUpIngest: an instance started on a
// populated sealed schema without its key file is refused at once, and
// the running instances go on applying batches, even while history is
// being vacuumed. Before, the start took the 'sealed' row FOR UPDATE
// (which every batch's first statement waits for) and then waited,
// without a lock_timeout, for a SHARE lock on the tables behind the
// vacuum: one forgotten --keys stopped ingest everywhere for as long as
// the vacuum ran.
func TestWrongSealingModeStartDoesNotHoldUpIngest(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	k := storetest.Keyring(t, storetest.Keys(t))
	s := openSealedStore(t, schema, k)
	storetest.ApplyAll(t, s, storetest.Population(t, 20, 1), 100)
	release := vacuumLock(t, schema, "history")

	type result struct {
		err  error
		took time.Duration
	}
	opened := make(chan result, 1)
	go func() {
		octx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		start := time.Now()
		o, err := Open(octx, Config{URL: testenv.PostgresURL(), Schema: schema})
		if err == nil {
			o.Close()
		}
		opened <- result{err, time.Since(start)}
	}()
	time.Sleep(700 * time.Millisecond)

	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, applyErr := s.Apply(actx, storetest.Population(t, 5, 2))
	release()
	o := <-opened
	if o.err == nil || !strings.Contains(o.err.Error(), "is sealed") {
		t.Errorf("an instance without keys opening the sealed schema: %v, want refused as sealed", o.err)
	}
	if o.took > 3*time.Second {
		t.Errorf("the refusal took %s: it waited behind the vacuum", o.took.Round(time.Millisecond))
	}
	if applyErr != nil {
		t.Fatalf("a batch of the running instance while an instance without keys started: %v", applyErr)
	}
}

// TestEmptySchemaModeChangeGivesUpBehindAVacuum: an empty schema takes the
// sealing mode of the instance that opens it (resetSealing), which needs a
// SHARE lock on its tables; behind a vacuum of history the start gives up
// after a few seconds, saying why, instead of waiting for as long as the
// vacuum runs while holding the row every batch reads first.
func TestEmptySchemaModeChangeGivesUpBehindAVacuum(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	openTestStore(t, schema) // recorded in clear, empty
	vacuumLock(t, schema, "history")

	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	s, err := Open(octx, Config{URL: testenv.PostgresURL(), Schema: schema, Keys: storetest.Keyring(t, storetest.Keys(t))})
	took := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("opened an empty schema in another mode while its tables could not be locked")
	}
	if octx.Err() != nil || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("after %s: %v, want a refusal naming the lock it could not take", took.Round(time.Millisecond), err)
	}
	t.Logf("after %s: %v", took.Round(time.Millisecond), err)
}
