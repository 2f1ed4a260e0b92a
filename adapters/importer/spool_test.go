package importer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// spoolWatch records the spool files it sees in a TempDir while an
// import runs: none should ever be there, since the spool holds every
// valid line in clear and a run killed by SIGKILL, the OOM killer or a
// power cut never gets to remove a file it left in the directory.
type spoolWatch struct {
	dir    string
	mu     sync.Mutex
	looks  int
	spools []string
}

// look lists the spool files now in the directory.
func (w *spoolWatch) look() {
	names, _ := filepath.Glob(filepath.Join(w.dir, "pophub-import-*.spool"))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.looks++
	for _, name := range names {
		if !slices.Contains(w.spools, name) {
			w.spools = append(w.spools, name)
		}
	}
}

// Write makes the watch a Progress writer: the validation phase draws its
// final state once every valid line is in the spool.
func (w *spoolWatch) Write(p []byte) (int, error) {
	w.look()
	return len(p), nil
}

// TestSpoolNotLeftOnDisk: while an import runs, validating first, its
// TempDir holds no spool file by name, whether the run is a dry run, a
// run that sends, or one that resumes an import stopped midway, so a
// killed run leaves no copy of the department's file behind; and the
// imports still send every valid line exactly once.
func TestSpoolNotLeftOnDisk(t *testing.T) {
	const n = 3000
	lines := marriageLines(t, n)
	crash := errors.New("crash")
	for _, tc := range []struct {
		name    string
		dryRun  bool
		crashed bool // a first run stops after its first chunk
	}{
		{"dry run", true, false},
		{"send", false, false},
		{"resume", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "marriage.jsonl")
			if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions) // a cluster of its own: the resume looks at the topic
			spoolDir := t.TempDir()
			w := &spoolWatch{dir: spoolDir}
			cfg := Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}, DryRun: tc.dryRun,
				TempDir: spoolDir, Progress: w, BatchSize: 100, ChunkSize: 500}
			cfg.hookOK = func(int) error { w.look(); return nil }
			want := n
			if tc.crashed {
				c := cfg
				c.hookOK = func(int) error { w.look(); return crash }
				rep, err := Run(context.Background(), c)
				if !errors.Is(err, crash) {
					t.Fatalf("first run: %v", err)
				}
				want -= rep.Sent
			}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if sent := map[bool]int{true: 0, false: want}[tc.dryRun]; rep.Sent != sent {
				t.Errorf("%d sent, want %d", rep.Sent, sent)
			}
			if w.looks == 0 {
				t.Fatal("the TempDir was never looked at during the run")
			}
			if len(w.spools) > 0 {
				t.Errorf("during the run the TempDir held %v: a killed run would leave them", w.spools)
			}
			if left, _ := os.ReadDir(spoolDir); len(left) > 0 {
				t.Errorf("after the run the TempDir holds %d files", len(left))
			}
		})
	}
}
