package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/api"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/pgmigrate"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestOpenIndexesHouseholdsOfOlderSchema: persons written by a release
// before the household index (0012_household_lookup) have no
// household_key, and state may be sealed, so SQL cannot fill it in. The
// first open of this release does, in the background; until then a
// store opened without migrating (OpenExisting) refuses a household
// lookup rather than miss members, and answers it once the index is
// built. Every person is then found in their household.
func TestOpenIndexesHouseholdsOfOlderSchema(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, testenv.Schema(t))
	in := storetest.Population(t, 120, 31)
	storetest.ApplyAll(t, src, in, 50)
	old := testenv.Schema(t)
	migrateAsOlderRelease(t, old, "0011_counting_rules")
	copyRecords(t, src.Schema(), old)
	copyCounters(t, src, old)
	// The rest, as a hub of this release that failed before indexing.
	if err := pgmigrate.Apply(ctx, poolOn(t, old), migrations, old, "pophub-migrate", nil); err != nil {
		t.Fatal(err)
	}

	want := storetest.Expected(in)
	probe := householdProbe(t, want)
	tool, err := OpenExisting(ctx, Config{URL: testenv.PostgresURL(), Schema: old})
	if err != nil {
		t.Fatal(err)
	}
	defer tool.Close()
	if _, _, err := tool.Persons(ctx, probe); !errors.Is(err, hub.ErrUnavailable) {
		t.Errorf("a household lookup before the index is built: %v, want ErrUnavailable", err)
	}

	rec := &logRecorder{}
	s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: old, Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.indexing.Wait()
	if got := rec.logged("indexed the households"); len(got) != 1 {
		t.Errorf("logged %q, want the households indexed once", got)
	}
	checkEveryHousehold(t, s, want)
	if _, _, err := tool.Persons(ctx, probe); err != nil {
		t.Errorf("a household lookup once the index is built: %v", err)
	}

	rec2 := &logRecorder{}
	again, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: old, Logger: slog.New(rec2)})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if got := rec2.logged("households"); len(got) > 0 {
		t.Errorf("the second open logged %q", got)
	}
}

// TestHouseholdIndexWalksInBackgroundAndResumes: the walk that fills in
// household_key for persons written before 0012 runs after Open returns
// (it took 125–180 µs a person inside Open, half an hour for 10 million
// before the hub served anything), one instance at a time, and keeps its
// progress: a second instance stands by while the first walks, and when
// the first is closed part-way it resumes where the first stopped, so
// that every person is read once in all. Household lookups are refused
// until the walk is done, then find every member.
func TestHouseholdIndexWalksInBackgroundAndResumes(t *testing.T) {
	const persons, page, pausedAfter = 2000, 100, 500
	for _, tc := range []struct {
		name   string
		sealed bool
	}{
		{"in clear", false},
		{"sealed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var keys *sealing.Keyring
			if tc.sealed {
				keys = storetest.Keyring(t, storetest.Keys(t))
			}
			schema := testenv.Schema(t)
			cfg := Config{URL: testenv.PostgresURL(), Schema: schema, Keys: keys}
			in := storetest.Population(t, persons, 7)
			loadAsOlderRelease(t, cfg, in)

			// The first instance walks 5 pages, then stays inside its
			// walk until closed.
			paused := make(chan struct{})
			var read1 atomic.Int64
			cfg1 := cfg
			cfg1.indexing = indexingTuning{page: page, retry: 10 * time.Millisecond, paged: func(ctx context.Context, read int64) {
				read1.Store(read)
				if read == pausedAfter {
					close(paused)
					<-ctx.Done()
				}
			}}
			first, err := Open(ctx, cfg1)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			await(t, paused, "the first instance to walk 5 pages")
			want := storetest.Expected(in)
			probe := householdProbe(t, want)
			if _, _, err := first.Persons(ctx, probe); !errors.Is(err, hub.ErrUnavailable) {
				t.Errorf("a household lookup while the index is walked: %v, want ErrUnavailable", err)
			}
			if got := indexStatus(t, first); got == nil || got.PersonsIndexed != pausedAfter {
				t.Errorf("the status while the index is walked has household_index %+v, want %d persons indexed", got, pausedAfter)
			}

			// The second stands by while the first holds the lease.
			standingBy := make(chan struct{}, 1)
			var read2 atomic.Int64
			rec := &logRecorder{}
			cfg2 := cfg
			cfg2.Logger = slog.New(rec)
			cfg2.indexing = indexingTuning{page: page, retry: 10 * time.Millisecond,
				paged:      func(_ context.Context, read int64) { read2.Store(read) },
				standingBy: func() { nonBlockingSend(standingBy) }}
			second, err := Open(ctx, cfg2)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			await(t, standingBy, "the second instance to stand by")
			await(t, standingBy, "the second instance to stand by again")
			if got := read2.Load(); got != 0 {
				t.Errorf("the second instance read %d persons while the first walked", got)
			}

			// Closed part-way, the first leaves the rest to the second.
			first.Close()
			second.indexing.Wait()
			var stored int64
			if err := second.pool.QueryRow(ctx, "SELECT count(*) FROM persons WHERE version > 0").Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if r1, r2 := read1.Load(), read2.Load(); r1 != pausedAfter || r1+r2 != stored {
				t.Errorf("the first instance read %d persons and the second %d, want %d and the %d others: each person once", r1, r2, pausedAfter, stored-pausedAfter)
			}
			if got := rec.logged("indexed the households"); len(got) != 1 {
				t.Errorf("the second instance logged %q, want the households indexed once", got)
			}
			checkEveryHousehold(t, second, want)
			if got := indexStatus(t, second); got != nil {
				t.Errorf("the status once the index is built has household_index %+v", got)
			}

			// A third finds it built.
			rec3 := &logRecorder{}
			cfg3 := cfg
			cfg3.Logger = slog.New(rec3)
			third, err := Open(ctx, cfg3)
			if err != nil {
				t.Fatal(err)
			}
			third.Close()
			if got := rec3.logged("households"); len(got) > 0 {
				t.Errorf("an open after the index was built logged %q", got)
			}
		})
	}
}

// indexStatus is the household index part of GET /v1/admin/status served
// on s.
func indexStatus(t *testing.T, s *Store) *api.IndexBuild {
	t.Helper()
	return adminStatus(t, s).Store.HouseholdIndex
}

// adminStatus is GET /v1/admin/status served on s, whose store part must
// be ok.
func adminStatus(t *testing.T, s *Store) api.Status {
	t.Helper()
	st := adminStatusAnyway(t, s)
	if !st.Store.OK {
		t.Errorf("the store's status is failing: %s", st.Store.Error)
	}
	return st
}

// adminStatusAnyway is GET /v1/admin/status served on s.
func adminStatusAnyway(t *testing.T, s *Store) api.Status {
	t.Helper()
	rec := httptest.NewRecorder()
	api.AdminHandlers(api.AdminConfig{Store: s})[api.RouteStatus].ServeHTTP(rec, httptest.NewRequest("GET", "/v1/admin/status", nil))
	var st api.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); rec.Code != 200 || err != nil {
		t.Fatalf("status answered %d %s: %v", rec.Code, rec.Body, err)
	}
	return st
}

// loadAsOlderRelease loads in into cfg's schema and leaves it as a schema
// written before 0012 looks once migrated: no household_key, and the
// householdsMeta row asking for it.
func loadAsOlderRelease(t *testing.T, cfg Config, in []hub.Input) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := s.NewLoader()
	if err := l.Load(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	execIn(t, "UPDATE "+pgx.Identifier{cfg.Schema, "persons"}.Sanitize()+" SET household_key = ''")
	execIn(t, "INSERT INTO "+pgx.Identifier{cfg.Schema, "hub_meta"}.Sanitize()+" (name, value) VALUES ($1, 'persons written before the household index')", householdsMeta)
}

// householdProbe is the lookup of the household of some person in want.
func householdProbe(t *testing.T, want map[citizenid.ID]hub.Record) hub.PersonQuery {
	t.Helper()
	for _, r := range want {
		if r.Hukou != nil && r.Hukou.HouseholdID != "" {
			return hub.PersonQuery{Region: r.Hukou.AddressCode, Household: r.Hukou.HouseholdID, Limit: 10}
		}
	}
	t.Fatal("no person with a household")
	return hub.PersonQuery{}
}

// checkEveryHousehold looks up every household in want once, and fails
// for each person missing from theirs.
func checkEveryHousehold(t *testing.T, s *Store, want map[citizenid.ID]hub.Record) {
	t.Helper()
	ctx := context.Background()
	members := map[hub.PersonQuery][]citizenid.ID{}
	persons := 0
	for id, r := range want {
		if r.Hukou != nil && r.Hukou.HouseholdID != "" {
			q := hub.PersonQuery{Region: r.Hukou.AddressCode, Household: r.Hukou.HouseholdID, Limit: hub.MaxPersonsPage}
			members[q] = append(members[q], id)
			persons++
		}
	}
	if persons < len(want)/3 {
		t.Fatalf("only %d of %d persons with a household: the population tests too little", persons, len(want))
	}
	for q, ids := range members {
		recs, _, err := s.Persons(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if !slices.ContainsFunc(recs, func(m hub.Record) bool { return m.CitizenID == id }) {
				t.Errorf("%s is not found in their household after the upgrade (%d found)", id.Masked(), len(recs))
			}
		}
	}
}

// await waits for a signal on c, and fails after a minute: the walk it
// waits for has stopped.
func await(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Minute):
		t.Fatalf("waited a minute for %s", what)
	}
}

// nonBlockingSend signals c unless a signal is already waiting.
func nonBlockingSend(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
