package memdb

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/hub/storetest"
)

// TestSnapshotLinesMatchEncodingJSON: the hand-written snapshot lines are
// byte for byte what json.Encoder writes, for a store's real rows and for
// the awkward ones, and awkward ones it cannot write go to encoding/json.
func TestSnapshotLinesMatchEncodingJSON(t *testing.T) {
	s := open(t, "")
	apply(t, s, storetest.Population(t, 60, 5), 50)
	var persons, histories int
	for _, raw := range snapshotRows(t, s) {
		switch o := raw.(type) {
		case *person:
			st, err := merge.Marshal(o.State)
			if err != nil {
				t.Fatal(err)
			}
			checkPersonLine(t, o.Key, st)
			persons++
		case *historyRow:
			checkHistoryLine(t, o)
			histories++
		}
	}
	if persons < 60 || histories < persons {
		t.Fatalf("compared %d persons and %d history rows; the population has more", persons, histories)
	}

	at := time.Date(2024, 3, 1, 8, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	base := hub.Change{Version: 3, EventID: "e-1", Source: "health", Type: "death.certified", Time: at, AppliedAt: at.UTC(),
		Sections: []string{"status"}, Data: json.RawMessage(`{"date_of_death":"2024-03-01"}`)}
	tests := []struct {
		name     string
		mutate   func(*historyRow)
		fallback bool // the appender hands it to encoding/json
	}{
		{"plain", func(*historyRow) {}, false},
		{"HTML and quotes in an id", func(h *historyRow) { h.Change.EventID = `a<b>&"c"\` + "\u2028" }, false},
		{"no sections", func(h *historyRow) { h.Change.Sections = nil }, false},
		{"empty sections", func(h *historyRow) { h.Change.Sections = []string{} }, false},
		{"no data", func(h *historyRow) { h.Change.Data = nil }, false},
		{"empty key, source and id", func(h *historyRow) { h.Key, h.Source, h.EventID = "", "", "" }, false},
		{"invalid UTF-8", func(h *historyRow) { h.Change.Type = "x\xffy" }, false},
		{"data with spaces", func(h *historyRow) { h.Change.Data = json.RawMessage(`{ "a": 1 }`) }, true},
		{"data with HTML", func(h *historyRow) { h.Change.Data = json.RawMessage(`{"a":"<b>"}`) }, true},
		{"zone with seconds", func(h *historyRow) { h.Change.Time = at.In(time.FixedZone("LMT", 8*3600+5)) }, true},
		{"year 10000", func(h *historyRow) { h.Change.AppliedAt = at.AddDate(8000, 0, 0) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &historyRow{Key: "230102199001011230", Source: "health", EventID: "e-1", Change: base}
			tc.mutate(h)
			if _, ok := appendHistoryLine(nil, h); ok == tc.fallback {
				t.Fatalf("handled = %v, want %v", ok, !tc.fallback)
			}
			if !tc.fallback {
				checkHistoryLine(t, h)
			}
		})
	}
	checkPersonLine(t, "", []byte(`{"a":[1,2,{"b":null}]}`))
	if _, ok := appendPersonLine(nil, "k", []byte(`{"a": 1}`)); ok {
		t.Error("a state with spaces was written as is; encoding/json compacts it")
	}
}

func checkPersonLine(t *testing.T, key string, st []byte) {
	t.Helper()
	got, ok := appendPersonLine(nil, key, st)
	want, err := encodeLineStd(nil, snapshotLine{Kind: "p", Key: key, State: st})
	if !ok || err != nil || string(got) != string(want) {
		t.Fatalf("person line (handled %v, %v):\n got %s\nwant %s", ok, err, got, want)
	}
}

func checkHistoryLine(t *testing.T, h *historyRow) {
	t.Helper()
	got, ok := appendHistoryLine(nil, h)
	want, err := encodeLineStd(nil, snapshotLine{Kind: "h", Key: h.Key, Source: h.Source, EventID: h.EventID, Change: &h.Change})
	if !ok || err != nil || string(got) != string(want) {
		t.Fatalf("history line (handled %v, %v):\n got %s\nwant %s", ok, err, got, want)
	}
}

// snapshotRows lists what a snapshot writes as person and history lines:
// each person, then their history rows.
func snapshotRows(tb testing.TB, s *Store) []any {
	tb.Helper()
	it, err := s.db.Txn(false).Get("persons", "id")
	if err != nil {
		tb.Fatal(err)
	}
	var rows []any
	for raw := it.Next(); raw != nil; raw = it.Next() {
		p := raw.(*person)
		rows = append(rows, p)
		for _, c := range p.History.oldestFirst() {
			rows = append(rows, &historyRow{Key: p.Key, Source: string(c.Source), EventID: c.EventID, Change: c})
		}
	}
	return rows
}

// BenchmarkSnapshotLines: writing a snapshot's person and history lines
// by hand and through encoding/json.
func BenchmarkSnapshotLines(b *testing.B) {
	s := open(b, "")
	apply(b, s, storetest.Population(b, 2000, 5), 500)
	rows := snapshotRows(b, s)
	for _, mode := range []string{"hand", "encoding-json"} {
		b.Run(mode, func(b *testing.B) {
			var line []byte
			for b.Loop() {
				for _, raw := range rows {
					line = line[:0]
					switch o := raw.(type) {
					case *person:
						st, _ := merge.Marshal(o.State)
						if mode == "hand" {
							line, _ = appendPersonLine(line, o.Key, st)
						} else {
							line, _ = encodeLineStd(line, snapshotLine{Kind: "p", Key: o.Key, State: st})
						}
					case *historyRow:
						if mode == "hand" {
							line, _ = appendHistoryLine(line, o)
						} else {
							line, _ = encodeLineStd(line, snapshotLine{Kind: "h", Key: o.Key, Source: o.Source, EventID: o.EventID, Change: &o.Change})
						}
					}
				}
			}
			b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// TestOutboxLinesMatchEncodingJSON: the hand-written outbox lines, of
// pending and of published notifications, are byte for byte what
// encoding/json writes, for a store's pending notifications and for
// awkward ones; a time it cannot write goes to encoding/json.
func TestOutboxLinesMatchEncodingJSON(t *testing.T) {
	s := open(t, "")
	apply(t, s, storetest.Population(t, 60, 5), 50)
	it, err := s.db.Txn(false).Get("outbox", "id")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		checkOutboxLine(t, raw.(*outboxRow).Entries)
		rows++
	}
	if rows < 2 {
		t.Fatalf("compared %d outbox rows; the population has more", rows)
	}

	at := time.Date(2024, 3, 1, 8, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	base := hub.OutboxEntry{Seq: 7, Subject: "pop.death.23.2301.230102", MsgID: "c-1", Body: []byte(`{"a":"<b>"}`),
		Trace: map[string]string{"traceparent": "00-1-2-01", "tracestate": "a=b"}, CreatedAt: at}
	tests := []struct {
		name     string
		mutate   func(*hub.OutboxEntry)
		fallback bool
	}{
		{"plain", func(*hub.OutboxEntry) {}, false},
		{"no body", func(e *hub.OutboxEntry) { e.Body = nil }, false},
		{"empty body", func(e *hub.OutboxEntry) { e.Body = []byte{} }, false},
		{"no trace", func(e *hub.OutboxEntry) { e.Trace = nil }, false},
		{"empty trace", func(e *hub.OutboxEntry) { e.Trace = map[string]string{} }, false},
		{"HTML, quotes and invalid UTF-8", func(e *hub.OutboxEntry) {
			e.Subject, e.MsgID = `a<b>&"c"\`+"\u2028", "x\xffy"
			e.Trace = map[string]string{"<k>": "&v", "a\xff": "\u2029"}
		}, false},
		{"zero time", func(e *hub.OutboxEntry) { e.CreatedAt = time.Time{} }, false},
		{"zone with seconds", func(e *hub.OutboxEntry) { e.CreatedAt = at.In(time.FixedZone("LMT", 8*3600+5)) }, true},
		{"year 10000", func(e *hub.OutboxEntry) { e.CreatedAt = at.AddDate(8000, 0, 0) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			tc.mutate(&e)
			entries := []hub.OutboxEntry{base, e}
			if _, ok := appendOutboxLine(nil, entries); ok == tc.fallback {
				t.Fatalf("handled = %v, want %v", ok, !tc.fallback)
			}
			if !tc.fallback {
				checkOutboxLine(t, entries)
			}
			// What the snapshot writes: the same bytes, or the same error.
			got, err := outboxLine([]byte("x"), entries)
			want, wantErr := encodeLineStd([]byte("x"), snapshotLine{Kind: "o", Outbox: entries})
			if (err == nil) != (wantErr == nil) || (err == nil && string(got) != string(want)) {
				t.Fatalf("outboxLine: %v (encoding/json: %v)\n got %s\nwant %s", err, wantErr, got, want)
			}
			row := &publishedRow{Seq: 7, At: at.UnixNano(), Entries: entries}
			got, err = publishedLine([]byte("x"), row)
			want, wantErr = encodeLineStd([]byte("x"), snapshotLine{Kind: "a", Outbox: entries, At: row.At})
			if (err == nil) != (wantErr == nil) || (err == nil && string(got) != string(want)) {
				t.Fatalf("publishedLine: %v (encoding/json: %v)\n got %s\nwant %s", err, wantErr, got, want)
			}
		})
	}
	checkOutboxLine(t, nil)
}

func checkOutboxLine(t *testing.T, entries []hub.OutboxEntry) {
	t.Helper()
	got, ok := appendOutboxLine(nil, entries)
	want, err := encodeLineStd(nil, snapshotLine{Kind: "o", Outbox: entries})
	if !ok || err != nil || string(got) != string(want) {
		t.Fatalf("outbox line (handled %v, %v):\n got %s\nwant %s", ok, err, got, want)
	}
	for _, at := range []int64{0, 1_709_251_200_123_456_789, -5} {
		got, ok := appendEntriesLine(nil, "a", entries, at)
		want, err := encodeLineStd(nil, snapshotLine{Kind: "a", Outbox: entries, At: at})
		if !ok || err != nil || string(got) != string(want) {
			t.Fatalf("published line (handled %v, %v):\n got %s\nwant %s", ok, err, got, want)
		}
	}
}

// BenchmarkSnapshotOutboxLines: writing the pending notifications' lines
// by hand and through encoding/json.
func BenchmarkSnapshotOutboxLines(b *testing.B) {
	s := open(b, "")
	apply(b, s, storetest.Population(b, 2000, 5), 500)
	it, err := s.db.Txn(false).Get("outbox", "id")
	if err != nil {
		b.Fatal(err)
	}
	var rows [][]hub.OutboxEntry
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		rows = append(rows, raw.(*outboxRow).Entries)
		n += len(raw.(*outboxRow).Entries)
	}
	for _, mode := range []string{"hand", "encoding-json"} {
		b.Run(mode, func(b *testing.B) {
			var line []byte
			for b.Loop() {
				for _, entries := range rows {
					if mode == "hand" {
						line, _ = appendOutboxLine(line[:0], entries)
					} else {
						line, _ = encodeLineStd(line[:0], snapshotLine{Kind: "o", Outbox: entries})
					}
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}
