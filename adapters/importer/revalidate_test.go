package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestRejectedThenValidIsSent: whether a line is valid depends on when
// it is validated (a time in the future becomes valid once that day
// comes), so a line a run rejected is sent by a later run of the same
// file that finds it valid — after a complete import as after an
// interrupted one, from a complete checkpoint or an unfinished one — and
// counted as sent, not as already sent; the lines sent before are not
// sent again. A checkpoint written before checkpoints recorded their
// rejected lines is set aside: the file is imported afresh.
func TestRejectedThenValidIsSent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interrupt bool // the first run stops after a checkpoint past the rejected line
		old       bool // the first run's checkpoint is rewritten as an older version
	}{
		{"after a complete import", false, false},
		{"after an interrupted import", true, false},
		{"after an older version's checkpoint", false, true},
	} {
		for _, stream := range []bool{false, true} {
			name := tc.name + "/validating first"
			if stream {
				name = tc.name + "/streaming"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testRejectedThenValid(t, tc.interrupt, tc.old, stream)
			})
		}
	}
}

func testRejectedThenValid(t *testing.T, interrupt, old, stream bool) {
	m, tab, events := housingRows(t, 30)
	n := len(events)
	if n < 10 {
		t.Fatalf("%d events: the test needs 10", n)
	}
	now := time.Now()
	const rejectedLine = 6 // rows[4]: line 1 is the header
	tab.rows[rejectedLine-2][colIndex(t, tab, "登记时间")] = now.Add(72 * time.Hour).In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05")
	file := tempFile(t, "housing.csv")
	writeCSV(t, file, tab, gbk)
	addr := testenv.Kafka(t, partitions)
	topic := schemas.Topic(schemas.Housing)
	cfg := Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}, Stream: stream}
	cfg.now = func() time.Time { return now }

	first := cfg
	crash := errors.New("crash")
	if interrupt {
		// Chunks of two lines, each checkpointed: the checkpoint after
		// chunk 2 (lines 7–8) lies past the rejected line 6, and chunk 3
		// is sent but not checkpointed.
		first.BatchSize, first.ChunkSize, first.CheckpointInterval = 2, 2, time.Nanosecond
		first.hookOK = func(chunk int) error {
			if chunk >= 3 {
				return crash
			}
			return nil
		}
	}
	rep, err := Run(context.Background(), first)
	switch {
	case interrupt && !errors.Is(err, crash):
		t.Fatalf("first run: %v, want the crash", err)
	case !interrupt && err != nil:
		t.Fatalf("first run: %v", err)
	}
	if rep.Rejected != 1 || len(rep.Rejects) != 1 || rep.Rejects[0].Line != rejectedLine {
		t.Fatalf("first run: %d rejected %v, want line %d", rep.Rejected, rep.Rejects, rejectedLine)
	}
	if !interrupt && rep.Sent != n-1 {
		t.Fatalf("first run sent %d, want %d", rep.Sent, n-1)
	}
	ck, err := loadCheckpoint(file + ".pophub-import.json")
	if err != nil || ck == nil || ck.Complete == interrupt || ck.LinesAcked <= rejectedLine || !equalRanges(ck.Rejected, lineRanges{{rejectedLine, rejectedLine}}) {
		t.Fatalf("checkpoint after the first run: %+v, %v; want one past line %d, complete %v, recording it rejected", ck, err, rejectedLine, !interrupt)
	}
	if old {
		downgradeCheckpoint(t, file+".pophub-import.json")
	}
	if !interrupt && !old {
		// Run again the same day, the line is still rejected: nothing
		// is sent, and the checkpoint still records the line.
		rep, err := Run(context.Background(), cfg)
		if err != nil || rep.Sent != 0 || rep.AlreadySent != n-1 || rep.Rejected != 1 {
			t.Fatalf("run on the same day: %v, %d sent, %d already sent, %d rejected; want 0, %d, 1", err, rep.Sent, rep.AlreadySent, rep.Rejected, n-1)
		}
		if ck, err := loadCheckpoint(file + ".pophub-import.json"); err != nil || ck == nil || !ck.Complete || !equalRanges(ck.Rejected, lineRanges{{rejectedLine, rejectedLine}}) {
			t.Fatalf("checkpoint after the run on the same day: %+v, %v", ck, err)
		}
	}

	// Days later the line's time has come: it is valid, and sent.
	later := now.Add(96 * time.Hour)
	cfg.now = func() time.Time { return later }
	rep, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if rep.Rejected != 0 || rep.Valid != n {
		t.Errorf("second run: %d valid, %d rejected; want %d, 0", rep.Valid, rep.Rejected, n)
	}
	switch {
	case old:
		if rep.SetAside == "" || rep.Resumed || rep.Sent != n {
			t.Errorf("second run: set aside %q, resumed %v, sent %d; want the older checkpoint set aside and all %d sent", rep.SetAside, rep.Resumed, rep.Sent, n)
		}
	case !interrupt:
		if rep.Sent != 1 || rep.AlreadySent != n-1 {
			t.Errorf("second run: %d sent, %d already sent; want 1, %d (%s)", rep.Sent, rep.AlreadySent, n-1, rep.Summary())
		}
	default:
		if rep.Sent < 1 || rep.Sent+rep.AlreadySent != n {
			t.Errorf("second run: %d sent, %d already sent; want line %d among the sent and %d in all (%s)", rep.Sent, rep.AlreadySent, rejectedLine, n, rep.Summary())
		}
	}
	// The hub judges the records when they arrive: days later.
	byID := map[string]int{}
	for i, r := range testenv.Records(t, addr, topic) {
		ev, err := schemas.Decode(schemas.Input{Topic: r.Topic, Key: r.Key, Value: r.Value, Now: later})
		if err != nil {
			t.Fatalf("record %d does not decode: %v", i, err)
		}
		byID[ev.ID]++
	}
	if len(byID) != n {
		t.Errorf("%d distinct events on the topic, want %d", len(byID), n)
	}
	for id, c := range byID {
		if c != 1 && !old {
			t.Errorf("event %s is on the topic %d times", id, c)
		}
	}

	if ck, err := loadCheckpoint(file + ".pophub-import.json"); err != nil || ck == nil || !ck.Complete || len(ck.Rejected) != 0 {
		t.Errorf("checkpoint after the second run: %+v, %v; want a complete one with no rejected lines", ck, err)
	}

	// Now every line has been sent: a third run sends nothing.
	again, err := Run(context.Background(), cfg)
	if err != nil || again.Sent != 0 || again.AlreadySent != n {
		t.Errorf("third run: %v, %d sent, %d already sent; want 0, %d", err, again.Sent, again.AlreadySent, n)
	}
}

// downgradeCheckpoint rewrites a checkpoint as pophub wrote it before
// checkpoints recorded their rejected lines: version 1, no such field.
func downgradeCheckpoint(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ck map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // lines_acknowledged of a complete checkpoint is beyond a float64's integers
	if err := dec.Decode(&ck); err != nil {
		t.Fatal(err)
	}
	ck["version"] = 1
	delete(ck, "rejected_lines")
	if b, err = json.Marshal(ck); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLineRanges: the checkpoint's rejected lines are kept as sorted,
// disjoint ranges, so a file of mostly bad lines has a small checkpoint.
func TestLineRanges(t *testing.T) {
	var r lineRanges
	for _, l := range []int{3, 4, 5, 9, 10, 12} {
		r.add(l)
	}
	if want := (lineRanges{{3, 5}, {9, 10}, {12, 12}}); !equalRanges(r, want) {
		t.Fatalf("added: %v, want %v", r, want)
	}
	for l, want := range map[int]bool{2: false, 3: true, 5: true, 6: false, 9: true, 11: false, 12: true, 13: false} {
		if r.has(l) != want {
			t.Errorf("has(%d) = %v", l, !want)
		}
	}
	for _, tc := range []struct {
		name      string
		got, want lineRanges
	}{
		{"clip", r.clip(4, 11), lineRanges{{4, 5}, {9, 10}}},
		{"clip to nothing", r.clip(6, 8), nil},
		{"intersect", r.intersect(lineRanges{{1, 3}, {5, 9}, {11, 20}}), lineRanges{{3, 3}, {5, 5}, {9, 9}, {12, 12}}},
		{"union", r.union(lineRanges{{1, 2}, {6, 7}, {11, 11}, {20, 21}}), lineRanges{{1, 7}, {9, 12}, {20, 21}}},
		{"union with nothing", r.union(nil), r},
	} {
		if !equalRanges(tc.got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func equalRanges(a, b lineRanges) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
