package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/consumers/statsbureau"
	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/region"
)

// officialRuralAddr is a residents' committee: urban in the built-in
// region table, rural (220) in the official one hubWithOfficialRegions
// installs.
const officialRuralAddr = "230102001001"

// hubWithOfficialRegions sets up what a hub run with an official NBS region
// table leaves for the stats commands: the table, imported with 'pophub
// regions import' into dir (as regionsFileName, where the hub looks for it
// in its --data) and loaded as Main.Start does, and the store open returns
// holding one registration at officialRuralAddr, closed again so that a
// command can open it. The built-in table is the default again when t
// ends. It returns the table's path.
func hubWithOfficialRegions(t *testing.T, dir string, open func() (hub.Store, error)) string {
	t.Helper()
	t.Cleanup(func() { region.SetDefault(region.Builtin()) })
	csv := filepath.Join(t.TempDir(), "nbs.csv")
	if err := os.WriteFile(csv, []byte("code,class,name\n"+officialRuralAddr+",220,省报社社区居委会\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	table := filepath.Join(dir, regionsFileName)
	if out, err := execute(t, rootCommand(), "regions", "import", "--file", csv, "--out", table); err != nil {
		t.Fatal(err, out)
	}
	if err := loadRegions(table); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2020, 1, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	in := []hub.Input{storetest.Event(t, schemas.HukouRegistered, storetest.ValidID(1), "ps-r1", at,
		schemas.HukouRegisteredData{Name: "李娜", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: officialRuralAddr, HouseholdID: "H1", Reason: "birth"})}
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	storetest.ApplyAll(t, s, in, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return table
}

// TestStatsVerifyUsesOfficialTable: a hub run with an official NBS table
// keeps its counters by the official classes, and `pophub stats verify`
// recounts by the same table, named with --regions or installed in the
// data directory, so a consistent store verifies clean.
func TestStatsVerifyUsesOfficialTable(t *testing.T) {
	t.Cleanup(func() { region.SetDefault(region.Builtin()) })
	ctx := context.Background()

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
			url, schema := testenv.Postgres(t), testenv.Schema(t)
			table := hubWithOfficialRegions(t, t.TempDir(), func() (hub.Store, error) {
				return postgres.Open(ctx, postgres.Config{URL: url, Schema: schema})
			})
			return []string{"--postgres", url, "--schema", schema, "--regions", table}
		}},
		{"memdb with the table installed in --data", func(t *testing.T) []string {
			dir := t.TempDir()
			hubWithOfficialRegions(t, dir, func() (hub.Store, error) {
				return memdb.Open(ctx, memdb.Config{Dir: filepath.Join(dir, "store")})
			})
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
			if d, _ := region.Lookup(officialRuralAddr); d.UrbanRural != "rural" {
				t.Errorf("stats verify %v classified %s as %q, not by the official table", args, officialRuralAddr, d.UrbanRural)
			}
		})
	}
}

// TestStatsPullByteOrderMark: the CSV report begins with the UTF-8 byte
// order mark, so that Excel on Chinese Windows reads its names as UTF-8;
// --bom=false leaves it out for programs that do not expect it.
func TestStatsPullByteOrderMark(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"region":"23","name":"黑龙江省","as_of":"2025-12-31","urban":2,"rural":1,"total":3}`)
	}))
	defer srv.Close()
	tests := []struct {
		args    []string
		wantBOM bool
	}{
		{nil, true},
		{[]string{"--bom=false"}, false},
		{[]string{"--bom=false", "--format", "json"}, false},
		{[]string{"--format", "json"}, false},
	}
	for _, tc := range tests {
		t.Run(strings.Join(append([]string{"args"}, tc.args...), " "), func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "23.csv")
			args := append([]string{"stats", "pull", "--hub", srv.URL, "--region", "23", "--depth", "province", "--out", report}, tc.args...)
			if out, err := execute(t, rootCommand(), args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			b, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.HasPrefix(b, []byte(statsbureau.BOM)); got != tc.wantBOM {
				t.Errorf("report starts %q: byte order mark %v, want %v", b[:min(12, len(b))], got, tc.wantBOM)
			}
			if !strings.Contains(string(b), "黑龙江省") {
				t.Errorf("report %q lacks the province", b)
			}
		})
	}
}
