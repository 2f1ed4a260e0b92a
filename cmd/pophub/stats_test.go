package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// TestStatsVerifyUsesOfficialTable: a hub run with an official NBS table
// keeps its counters by the official classes, and `pophub stats verify`
// recounts by the same table, named with --regions or installed in the
// data directory, so a consistent store verifies clean.
func TestStatsVerifyUsesOfficialTable(t *testing.T) {
	t.Cleanup(func() { region.SetDefault(region.Builtin()) })
	ctx := context.Background()
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	// 230102001001 is a residents' committee, urban in the built-in table.
	in := []hub.Input{storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(1), "ps-r1", at,
		schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"})}

	// installTable imports an official table that makes it rural into dir
	// and loads it, as the hub does at start.
	installTable := func(t *testing.T, dir string) string {
		t.Helper()
		csv := filepath.Join(t.TempDir(), "nbs.csv")
		if err := os.WriteFile(csv, []byte("code,class,name\n230102001001,220,省报社社区居委会\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		table := filepath.Join(dir, regionsFileName)
		if out, err := execute(t, rootCommand(), "regions", "import", "--file", csv, "--out", table); err != nil {
			t.Fatal(err, out)
		}
		if err := loadRegions(table); err != nil {
			t.Fatal(err)
		}
		return table
	}

	tests := []struct {
		name string
		// hub runs a hub with the official table over a store and returns
		// the verify arguments that name that store and table.
		hub func(t *testing.T) []string
	}{
		// memdb derives its counters when it loads, so a memdb store
		// verifies whatever the table; the check below that verify loaded
		// the installed table is what this case is for.
		{"postgres with --regions", func(t *testing.T) []string {
			table := installTable(t, t.TempDir())
			url, schema := testenv.Postgres(t), testenv.Schema(t)
			s, err := postgres.Open(ctx, postgres.Config{URL: url, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			storetest.ApplyAll(t, s, in, 1)
			s.Close()
			return []string{"--postgres", url, "--schema", schema, "--regions", table}
		}},
		{"memdb with the table installed in --data", func(t *testing.T) []string {
			dir := t.TempDir()
			installTable(t, dir)
			s, err := memdb.Open(ctx, memdb.Config{Dir: filepath.Join(dir, "store")})
			if err != nil {
				t.Fatal(err)
			}
			storetest.ApplyAll(t, s, in, 1)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return []string{"--data", dir}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.hub(t)
			// The operator's verify process starts with the built-in table.
			region.SetDefault(region.Builtin())
			out, err := execute(t, rootCommand(), append([]string{"stats", "verify"}, args...)...)
			if err != nil {
				t.Errorf("stats verify %v on a consistent store: %v\n%s", args, err, out)
			}
			if d, _ := region.Lookup("230102001001"); d.UrbanRural != "rural" {
				t.Errorf("stats verify %v classified 230102001001 as %q, not by the official table", args, d.UrbanRural)
			}
		})
	}
}
