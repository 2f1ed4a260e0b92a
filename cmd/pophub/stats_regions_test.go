package main

import (
	"context"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas/region"
)

// TestStatsPostgresInstalledTable: a PostgreSQL hub run with --data DIR
// classifies by the table 'pophub regions import' installed in DIR, so
// `stats rebuild` and `stats verify` given the hub's --data next to
// --postgres must classify by it too; with the built-in table a rebuild
// would count an officially rural address as urban behind the hub's back.
func TestStatsPostgresInstalledTable(t *testing.T) {
	t.Cleanup(func() { region.SetDefault(region.Builtin()) })
	ctx := context.Background()

	tests := []struct {
		name string
		cmd  string
	}{
		{"rebuild", "rebuild"},
		{"verify", "verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The hub: loads the table installed in its --data as
			// Main.Start does, and keeps its counters by it.
			dataDir := t.TempDir()
			url, schema := testenv.Postgres(t), testenv.Schema(t)
			hubWithOfficialRegions(t, dataDir, func() (hub.Store, error) {
				return postgres.Open(ctx, postgres.Config{URL: url, Schema: schema})
			})

			// The operator's process starts with the built-in table and is
			// given the hub's --data.
			region.SetDefault(region.Builtin())
			args := []string{"stats", tc.cmd, "--postgres", url, "--schema", schema, "--data", dataDir, "--keys", "none"}
			if out, err := execute(t, rootCommand(), args...); err != nil {
				t.Fatalf("%v on a consistent store: %v\n%s", args, err, out)
			}
			if d, _ := region.Lookup(officialRuralAddr); d.UrbanRural != "rural" {
				t.Errorf("%v classified %s as %q, not by the table installed in --data", args, officialRuralAddr, d.UrbanRural)
			}

			// The hub again, with its table: it serves what it counted, and
			// its counters equal its own recount.
			if err := loadRegions(regionsFile("", dataDir)); err != nil {
				t.Fatal(err)
			}
			s, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.Counts(ctx, hub.CountQuery{Regions: []string{officialRuralAddr}, AsOf: "2025-01-01"})
			if err != nil {
				t.Fatal(err)
			}
			if c := got[officialRuralAddr]; c.Rural != 1 || c.Urban != 0 {
				t.Errorf("after %v the hub serves %s (officially rural) as %+v", args, officialRuralAddr, c)
			}
			diffs, err := s.VerifyCounters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Errorf("after %v the counters differ from the hub's recount: %+v", args, diffs)
			}
		})
	}
}
