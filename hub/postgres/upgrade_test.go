package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/pgmigrate"
	"github.com/pophub/pophub/internal/testenv"
)

// logRecorder keeps the messages a store logs.
type logRecorder struct {
	mu   sync.Mutex
	msgs []logged // level and message, then attributes
}

type logged struct{ msg, attrs string }

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := logged{msg: rec.Level.String() + " " + rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs += " " + a.String()
		return true
	})
	r.msgs = append(r.msgs, l)
	return nil
}

// logged returns the records whose level and message contain s, each
// with its attributes.
func (r *logRecorder) logged(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		if strings.Contains(m.msg, s) {
			out = append(out, m.msg+m.attrs)
		}
	}
	return out
}

// migrationsUpTo returns the store's migrations up to and including the
// one named last: what an older release applied.
func migrationsUpTo(t *testing.T, last string) fstest.MapFS {
	t.Helper()
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, name := range names {
		if strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql") > last {
			continue
		}
		data, err := fs.ReadFile(migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = &fstest.MapFile{Data: data}
	}
	return out
}

// migrateAsOlderRelease applies to schema the migrations an older release
// had, up to last.
func migrateAsOlderRelease(t *testing.T, schema, last string) {
	t.Helper()
	ctx := context.Background()
	if err := pgmigrate.Apply(ctx, poolOn(t, schema), migrationsUpTo(t, last), schema, "pophub-migrate", nil); err != nil {
		t.Fatalf("migrating %s as far as %s: %v", schema, last, err)
	}
}

// poolOn is a pool on the test database searching schema, closed when
// the test ends.
func poolOn(t *testing.T, schema string) *pgxpool.Pool {
	t.Helper()
	pc, err := pgxpool.ParseConfig(testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// execIn runs SQL on the test database, outside any store.
func execIn(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// copyCounters copies a store's counters, with every change folded into
// them, into another schema, as an older release kept them.
func copyCounters(t *testing.T, from *Store, to string) {
	t.Helper()
	if _, _, err := from.foldCounters(context.Background()); err != nil {
		t.Fatal(err)
	}
	execIn(t, "INSERT INTO "+pgx.Identifier{to, "stats_counters"}.Sanitize()+" SELECT * FROM "+pgx.Identifier{from.Schema(), "stats_counters"}.Sanitize())
}

// copyRecords copies a store's persons and history into another schema,
// whose persons table may be an older release's: the columns the first
// migration made, and household_key (0012) only where the schema has it.
func copyRecords(t *testing.T, from, to string) {
	t.Helper()
	cols := "person_key, version, address_code, status, state, updated_at"
	execIn(t, "INSERT INTO "+pgx.Identifier{to, "persons"}.Sanitize()+" ("+cols+") SELECT "+cols+" FROM "+pgx.Identifier{from, "persons"}.Sanitize())
	execIn(t, "INSERT INTO "+pgx.Identifier{to, "history"}.Sanitize()+" SELECT * FROM "+pgx.Identifier{from, "history"}.Sanitize())
}

// TestOpenRecountsCountersOfOlderSchema: a schema whose persons predate
// the counters (a store of a release before 0004_stats) is recounted
// when this release opens it, before it serves a count, and says so; a
// fresh or up-to-date schema is not. Before, 0004_stats made an empty
// stats_counters beside the persons and every count was zero.
func TestOpenRecountsCountersOfOlderSchema(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, testenv.Schema(t))
	storetest.ApplyAll(t, src, storetest.Population(t, 120, 31), 50)
	q := hub.CountQuery{Regions: []string{"23", "2301", "230102", "11", "43", "4301"}, AsOf: "2022-06-30"}
	want, err := src.Counts(ctx, q)
	if err != nil || want["23"] == (hub.Tally{}) {
		t.Fatalf("source counts %v (%v): the population counts too little to test", want, err)
	}
	tests := []struct {
		name string
		// prepare leaves a schema as an older release did; it returns
		// the schema to open.
		prepare func(t *testing.T) string
		recount bool
		// empty: the schema holds no persons, and counts none.
		empty bool
	}{
		{"persons from before the counters", func(t *testing.T) string {
			old := testenv.Schema(t)
			migrateAsOlderRelease(t, old, "0003_person_listing")
			copyRecords(t, src.Schema(), old)
			return old
		}, true, false},
		{"upgraded by a release that did not recount, and written to since", func(t *testing.T) string {
			old := testenv.Schema(t)
			migrateAsOlderRelease(t, old, "0003_person_listing")
			copyRecords(t, src.Schema(), old)
			// The older migrations ran a day before the upgrade, which
			// made stats_counters, and a batch written after it added
			// its own changes to the empty counters.
			execIn(t, "UPDATE "+pgx.Identifier{old, "schema_migrations"}.Sanitize()+" SET applied_at = applied_at - interval '1 day'")
			execIn(t, "UPDATE "+pgx.Identifier{old, "history"}.Sanitize()+" SET applied_at = now() - interval '1 day'")
			migrateAsOlderRelease(t, old, "0008_county_key_walk")
			execIn(t, "INSERT INTO "+pgx.Identifier{old, "stats_counters"}.Sanitize()+" VALUES ('23', 'u', 'Y2023', 1)")
			return old
		}, true, false},
		{"a fresh schema", func(t *testing.T) string { return testenv.Schema(t) }, false, true},
		{"an up-to-date schema", func(t *testing.T) string { return src.Schema() }, false, false},
		{"a schema of the release before, made with counters", func(t *testing.T) string {
			prev := testenv.Schema(t)
			migrateAsOlderRelease(t, prev, "0008_county_key_walk")
			copyRecords(t, src.Schema(), prev)
			copyCounters(t, src, prev)
			return prev
		}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := tc.prepare(t)
			rec := &logRecorder{}
			s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: schema, Logger: slog.New(rec)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			recounts := rec.logged("recount")
			if tc.recount != (len(recounts) > 0) {
				t.Errorf("recount logged: %q, want a recount: %v", recounts, tc.recount)
			}
			if tc.recount && len(recounts) > 0 && !strings.HasPrefix(recounts[0], "WARN") {
				t.Errorf("the recount is announced as %q, want a warning", recounts[0])
			}
			got, err := s.Counts(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			wantCounts := want
			if tc.empty {
				wantCounts = map[string]hub.Tally{}
				for _, r := range q.Regions {
					wantCounts[r] = hub.Tally{}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(wantCounts) {
				t.Errorf("counts %v, want %v", got, wantCounts)
			}
			if diffs, err := s.VerifyCounters(ctx); err != nil || len(diffs) != 0 {
				t.Errorf("VerifyCounters: %d differences (%v)", len(diffs), err)
			}
			var flagged bool
			if err := s.Pool().QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM hub_meta WHERE name = 'counters_recount')").Scan(&flagged); err != nil || flagged {
				t.Errorf("hub_meta still asks for a recount (%v)", err)
			}
			// Opening it again recounts nothing.
			rec2 := &logRecorder{}
			again, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: schema, Logger: slog.New(rec2)})
			if err != nil {
				t.Fatal(err)
			}
			again.Close()
			if r := rec2.logged("recount"); len(r) > 0 {
				t.Errorf("the second open logged %q", r)
			}
		})
	}
}

// TestRecountOnceAcrossInstances: instances opening an upgraded schema at
// once recount its counters once between them, and each serves the
// recounted counts.
func TestRecountOnceAcrossInstances(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, testenv.Schema(t))
	storetest.ApplyAll(t, src, storetest.Population(t, 60, 7), 30)
	old := testenv.Schema(t)
	migrateAsOlderRelease(t, old, "0003_person_listing")
	copyRecords(t, src.Schema(), old)
	q := hub.CountQuery{Regions: []string{"23", "11", "43"}, AsOf: "2023-01-31"}
	want, err := src.Counts(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	rec := &logRecorder{}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: old, Logger: slog.New(rec)})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			got, err := s.Counts(ctx, q)
			if err == nil && fmt.Sprint(got) != fmt.Sprint(want) {
				err = fmt.Errorf("counts %v, want %v", got, want)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if done := rec.logged("INFO recounted the statistics counters"); len(done) != 1 {
		t.Errorf("recounted %d times (%q), want once", len(done), done)
	}
}

// TestStaleCountersWarnUntilRebuilt: counters an earlier release counted
// by rules since changed (permits, deaths) are not recounted behind the
// operator's back, which on a large store would hold ingest for minutes:
// every open warns, naming the command, until `pophub stats rebuild` has
// run; a fresh schema, or one this release made, is not marked.
func TestStaleCountersWarnUntilRebuilt(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, testenv.Schema(t))
	storetest.ApplyAll(t, src, storetest.Population(t, 40, 7), 50)
	// Releases before 0011 (permits, deaths), before 0016 (persons
	// known only by a migration) and before 0017 (permits of settled
	// holders) counted by rules since changed.
	var prevs []string
	for _, last := range []string{"0010_audit_redaction", "0015_counter_deltas_index", "0016_counting_migrated"} {
		prev := testenv.Schema(t)
		migrateAsOlderRelease(t, prev, last)
		copyRecords(t, src.Schema(), prev)
		copyCounters(t, src, prev)
		prevs = append(prevs, prev)
	}

	open := func(schema string) (*Store, []string) {
		t.Helper()
		rec := &logRecorder{}
		s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: schema, Logger: slog.New(rec)})
		if err != nil {
			t.Fatalf("Open %s: %v", schema, err)
		}
		t.Cleanup(func() { s.Close() })
		return s, rec.logged("pophub stats rebuild")
	}
	for _, schema := range []string{src.Schema(), testenv.Schema(t)} {
		if _, warned := open(schema); len(warned) > 0 {
			t.Errorf("schema %s made by this release: warned %q", schema, warned)
		}
	}
	for _, prev := range prevs {
		for i := range 2 {
			if _, warned := open(prev); len(warned) != 1 || !strings.HasPrefix(warned[0], "WARN") {
				t.Errorf("open %d of the earlier release's schema %s: logged %q, want one warning naming the rebuild", i+1, prev, warned)
			}
		}
		s, _ := open(prev)
		if _, err := s.RebuildCounters(ctx); err != nil {
			t.Fatal(err)
		}
		if _, warned := open(prev); len(warned) > 0 {
			t.Errorf("after the rebuild of %s: warned %q", prev, warned)
		}
	}
}
