package importer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// repeatFile is a file of distinct lines some of which are repeated.
type repeatFile struct {
	source   schemas.Source
	mapping  *Mapping // nil for JSONL
	distinct int      // the distinct lines
	// write writes the file's lines in order: each an index of a
	// distinct line. line gives the file's line number of the pos-th
	// data line of a file of n data lines.
	write func(file string, order []int)
	line  func(pos, n int) int
}

// TestExactRepeats: a line that repeats an earlier line exactly (the same
// event id and the same event) is what `pophub publish` calls a repeat,
// not a bad line: it is counted in Report.Repeated and listed in
// Report.Repeats with the first line it repeats, sent once, kept out of
// the rejects file, and counted toward no reject limit (a nightly export
// with a duplicated row used to fail every night). An import interrupted
// and resumed still sends every event once. The repeats lie next to their
// first line, far from it, and one line is there three times.
func TestExactRepeats(t *testing.T) {
	for _, tc := range []struct {
		name string
		load func(t *testing.T) repeatFile
	}{
		{"csv", func(t *testing.T) repeatFile {
			m, tab, events := housingRows(t, 400)
			rows := tab.rows
			return repeatFile{source: schemas.Housing, mapping: m, distinct: len(events),
				write: func(file string, order []int) {
					tab.rows = nil
					for _, i := range order {
						tab.rows = append(tab.rows, rows[i])
					}
					writeCSV(t, file, tab, gbk)
				},
				line: func(pos, _ int) int { return pos + 2 }} // after the header
		}},
		{"jsonl", func(t *testing.T) repeatFile {
			lines := marriageLines(t, 300)
			return repeatFile{source: schemas.Marriage, distinct: len(lines),
				write: func(file string, order []int) {
					var b strings.Builder
					for _, i := range order {
						b.WriteString(lines[i] + "\n")
					}
					if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
						t.Fatal(err)
					}
				},
				line: func(pos, _ int) int { return pos + 1 }}
		}},
		{"xlsx", func(t *testing.T) repeatFile {
			m, tab, events := housingRows(t, 400)
			m.HeaderRow = 2
			rows := tab.rows
			return repeatFile{source: schemas.Housing, mapping: m, distinct: len(events),
				write: func(file string, order []int) {
					tab.rows = nil
					for _, i := range order {
						tab.rows = append(tab.rows, rows[i])
					}
					writeXLSX(t, file, tab)
				},
				// A title, the header, then the rows with a blank one
				// in the middle (see writeXLSX).
				line: func(pos, n int) int {
					if pos >= n/2 {
						return pos + 4
					}
					return pos + 3
				}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.load(t)
			if f.distinct < 100 {
				t.Fatalf("%d distinct lines, too few to test with", f.distinct)
			}
			var order []int
			for i := range f.distinct {
				order = append(order, i)
				switch i {
				case 0, f.distinct / 2:
					order = append(order, i) // next to its first line
				case 70:
					order = append(order, 5) // far from it
				}
			}
			order = append(order, 0, f.distinct-1) // at the end, the first line a third time
			var want []Repeat
			first := map[int]int{}
			for pos, i := range order {
				line := f.line(pos, len(order))
				if fl, ok := first[i]; ok {
					want = append(want, Repeat{Line: line, First: fl})
				} else {
					first[i] = line
				}
			}
			file := tempFile(t, "export."+tc.name)
			f.write(file, order)
			cfg := Config{Source: f.source, File: file, Mapping: f.mapping, RejectLimit: 1}

			t.Run("dry run", func(t *testing.T) {
				c := cfg
				c.DryRun, c.ListRejects = true, 2
				rep, err := Run(context.Background(), c)
				if err != nil {
					t.Fatalf("%v (%s)", err, rep.Summary())
				}
				checkRepeats(t, rep, len(order), f.distinct, want, 2)
				if !strings.Contains(rep.Summary(), fmt.Sprintf("dry run: nothing sent, 0 rejected, %d repeated (the same row as an earlier line: ", len(want))) {
					t.Errorf("summary %q does not count the repeats apart", rep.Summary())
				}
			})

			t.Run("sent once, resumed", func(t *testing.T) {
				addr := testenv.Kafka(t, partitions)
				c := cfg
				c.Brokers, c.BatchSize, c.ChunkSize, c.CheckpointInterval = []string{addr}, 10, 20, time.Nanosecond
				crash := errors.New("crash")
				c.hookOK = func(n int) error {
					if n < 3 {
						return nil
					}
					return crash
				}
				rep, err := Run(context.Background(), c)
				if !errors.Is(err, crash) {
					t.Fatalf("the first run: %v, want the crash (%s)", err, rep.Summary())
				}
				checkRepeats(t, rep, len(order), f.distinct, want, 1000)
				if rep.Sent == 0 || rep.Sent >= f.distinct {
					t.Fatalf("the first run sent %d of %d events before it crashed", rep.Sent, f.distinct)
				}

				// Resumed, streaming (a streamed import has no reject limit).
				c.hookOK, c.RejectLimit, c.Stream = nil, 0, true
				rep, err = Run(context.Background(), c)
				if err != nil {
					t.Fatalf("the resumed run: %v", err)
				}
				checkRepeats(t, rep, len(order), f.distinct, want, 1000)
				if !rep.Resumed || rep.AlreadySent+rep.Sent != f.distinct {
					t.Errorf("the resumed run: resumed %v, %d already sent, %d sent; want %d in all", rep.Resumed, rep.AlreadySent, rep.Sent, f.distinct)
				}
				if s := rep.Summary(); !strings.Contains(s, fmt.Sprintf("0 rejected, %d repeated (the same row as an earlier line: sent once, nothing to fix)", len(want))) {
					t.Errorf("summary %q does not count the repeats apart", s)
				}
				byID := map[string]int{}
				for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(f.source))) {
					byID[ev.ID]++
				}
				if len(byID) != f.distinct {
					t.Errorf("%d distinct events on the topic, want %d", len(byID), f.distinct)
				}
				for id, n := range byID {
					if n != 1 {
						t.Errorf("event %s is on the topic %d times", id, n)
					}
				}
			})
		})
	}
}

// checkRepeats checks the account of a file of read lines, distinct of
// them distinct, that repeat as want says: every line valid or repeated,
// the first list repeats listed, no rejects file.
func checkRepeats(t *testing.T, rep *Report, read, distinct int, want []Repeat, list int) {
	t.Helper()
	if rep.Read != read || rep.Valid != distinct || rep.Rejected != 0 || rep.Repeated != len(want) {
		t.Errorf("%d read, %d valid, %d rejected %v, %d repeated; want %d, %d, 0, %d",
			rep.Read, rep.Valid, rep.Rejected, rep.Rejects, rep.Repeated, read, distinct, len(want))
	}
	if w := want[:min(list, len(want))]; !slices.Equal(rep.Repeats, w) {
		t.Errorf("repeats listed %v, want %v", rep.Repeats, w)
	}
	if rep.Refused() {
		t.Error("the repeats reached the reject limit")
	}
	if rep.RejectsFile != "" {
		t.Errorf("rejects file %s written", rep.RejectsFile)
	}
	if _, err := os.Stat(rep.File + ".rejects.csv"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejects file is beside the file: %v", err)
	}
	for _, r := range rep.Repeats {
		if s := r.String(); !strings.Contains(s, "repeats line") || !strings.Contains(s, "nothing to fix") {
			t.Errorf("repeat %q does not say what it repeats, and that it is harmless", s)
		}
	}
}
