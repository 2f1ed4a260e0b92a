package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestCDCPublicationFlag: --publication names the table's publication
// as --slot names its slot; a name PostgreSQL would not take is refused
// before anything is created, and --help documents both defaults and
// that a slot keeps WAL until dropped.
func TestCDCPublicationFlag(t *testing.T) {
	newLogger := func() *slog.Logger { return testLogger(t) }
	mapping := filepath.Join("..", "..", "adapters", "cdc", "examples", "rentals.yaml")
	args := []string{"--source", "housing", "--postgres", "postgres://nobody@127.0.0.1:1/x", "--table", "rentals",
		"--mapping", mapping, "--kafka", "127.0.0.1:1"}
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"publication", []string{"--publication", "Rentals-Pub"}, `publication "Rentals-Pub": use 1 to 63 lower-case letters, digits and _`},
		{"slot", []string{"--slot", "Rentals-Slot"}, `slot "Rentals-Slot": a replication slot name has 1 to 63 lower-case letters, digits and _`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := execute(t, cdcCommand(newLogger), append(append([]string{}, args...), tt.flags...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q\n%s", err, tt.want, out)
			}
		})
	}

	help, err := execute(t, cdcCommand(newLogger), "--help")
	if err != nil {
		t.Fatal(err)
	}
	// A slot left behind fills the department's disk: --help says so,
	// and how to drop it.
	for _, want := range []string{"--publication string", "--slot string", "pophub_<table>", "pophub_<source>_<table>",
		"WAL accumulates", "pg_drop_replication_slot", "retained_wal_bytes"} {
		if !strings.Contains(help, want) {
			t.Errorf("pophub cdc --help does not mention %q:\n%s", want, help)
		}
	}
}

// TestCDCStopAdvice: on stop, pophub cdc says how to stop streaming for
// good: drop the slot, which keeps WAL, and the publication, which
// otherwise stays on the department's table.
func TestCDCStopAdvice(t *testing.T) {
	got := cdcStopAdvice("pophub_housing_rentals", "pophub_rentals", 4096)
	for _, want := range []string{"slot pophub_housing_rentals keeps 4096 bytes of WAL",
		"SELECT pg_drop_replication_slot('pophub_housing_rentals');", "DROP PUBLICATION pophub_rentals;"} {
		if !strings.Contains(got, want) {
			t.Errorf("cdcStopAdvice = %q, want it to contain %q", got, want)
		}
	}
}
