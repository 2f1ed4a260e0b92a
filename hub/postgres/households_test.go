package postgres

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestOpenIndexesHouseholdsOfOlderSchema: persons written by a release
// before the household index (0012_household_lookup) have no
// household_key, and state may be sealed, so SQL cannot fill it in. The
// first open of this release does, before it serves; until then a store
// opened without migrating (OpenExisting) refuses a household lookup
// rather than miss members, and answers it once the index is built.
// Every person is then found in their household.
func TestOpenIndexesHouseholdsOfOlderSchema(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, testenv.Schema(t))
	in := storetest.Population(t, 120, 31)
	storetest.ApplyAll(t, src, in, 50)
	old := testenv.Schema(t)
	migrateAsOlderRelease(t, old, "0011_counting_rules")
	copyRecords(t, src.Schema(), old)
	execIn(t, "INSERT INTO "+pgx.Identifier{old, "stats_counters"}.Sanitize()+" SELECT * FROM "+pgx.Identifier{src.Schema(), "stats_counters"}.Sanitize())
	migrateAsOlderRelease(t, old, "0012_household_lookup") // as a hub that failed before indexing

	want := storetest.Expected(in)
	var probe hub.PersonQuery
	for _, r := range want {
		if r.Hukou != nil && r.Hukou.HouseholdID != "" {
			probe = hub.PersonQuery{Region: r.Hukou.AddressCode, Household: r.Hukou.HouseholdID, Limit: 10}
			break
		}
	}
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
	if got := rec.logged("indexed the households"); len(got) != 1 {
		t.Errorf("logged %q, want the households indexed once", got)
	}
	households := 0
	for id, r := range want {
		if r.Hukou == nil || r.Hukou.HouseholdID == "" {
			continue
		}
		households++
		q := hub.PersonQuery{Region: r.Hukou.AddressCode, Household: r.Hukou.HouseholdID, Limit: hub.MaxPersonsPage}
		recs, _, err := s.Persons(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(recs, func(m hub.Record) bool { return m.CitizenID == id }) {
			t.Errorf("%s is not found in their household after the upgrade (%d found)", id.Masked(), len(recs))
		}
	}
	if households < 50 {
		t.Fatalf("only %d persons with a household: the population tests too little", households)
	}
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
