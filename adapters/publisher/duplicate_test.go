package publisher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// bySource are the events of the population of each source, every one
// with an id of its own.
func bySource(t testing.TB) map[schemas.Source][]schemas.Event {
	t.Helper()
	out := map[schemas.Source][]schemas.Event{}
	for _, e := range population(t, 60) {
		out[e.Source] = append(out[e.Source], e)
	}
	if len(out[schemas.Housing]) < 3 || len(out[schemas.Tax]) < 1 {
		t.Fatalf("the population has %d housing and %d tax events", len(out[schemas.Housing]), len(out[schemas.Tax]))
	}
	return out
}

// recordsSent counts the records on every department topic.
func recordsSent(t testing.TB, addr string) int64 {
	t.Helper()
	var n int64
	for _, topic := range schemas.Topics() {
		n += testenv.RecordCount(t, addr, topic)
	}
	return n
}

// TestPublishSameID: the hub applies one event per (source, id) and drops
// a later one with that id as a repeat, so a Publish call that holds a
// second event under an earlier valid event's id with other content (a
// correction that kept the id) reports it as duplicate_id and does not
// send it, as the gateway and `pophub import` do. A byte-identical repeat
// is sent once and its Result is its first's: it is delivered.
func TestPublishSameID(t *testing.T) {
	evs := bySource(t)
	e, other := evs[schemas.Housing][0], evs[schemas.Housing][1]
	corr := e
	corr.Time = e.Time.Add(-time.Hour)
	future := e
	future.Time = time.Now().AddDate(0, 1, 0)
	taxSameID := evs[schemas.Tax][0]
	taxSameID.ID = e.ID
	// More events than Publish sends in groups of partitions, with a
	// correction and a repeat at the end.
	var large []schemas.Event
	var largeWant []string
	for i := range groupedMin + 50 {
		ev := evs[schemas.Housing][i%len(evs[schemas.Housing])]
		ev.ID = fmt.Sprintf("bulk-%d", i)
		large = append(large, ev)
		largeWant = append(largeWant, "")
	}
	largeCorr := large[0]
	largeCorr.Time = largeCorr.Time.Add(-time.Hour)
	large = append(large, largeCorr, large[1])
	largeWant = append(largeWant, ReasonDuplicateID, "")

	tests := []struct {
		name    string
		events  []schemas.Event
		want    []string // the reason of each Result, "" for delivered
		records int64
		detail  string // in the duplicate's detail
	}{
		{"a correction under the same id", []schemas.Event{e, other, corr}, []string{"", "", ReasonDuplicateID}, 2, "events[0]"},
		{"an exact repeat, sent as it came", []schemas.Event{e, e}, []string{"", ""}, 2, ""},
		{"a repeat and a correction", []schemas.Event{e, e, corr}, []string{"", "", ReasonDuplicateID}, 2, "events[0]"},
		{"the first under the id invalid", []schemas.Event{future, corr}, []string{schemas.ReasonNotCloudEvent, ""}, 1, ""},
		{"the same id in another source", []schemas.Event{e, taxSameID}, []string{"", ""}, 2, ""},
		{"a large call", large, largeWant, int64(groupedMin + 51), fmt.Sprintf("events[%d]", 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := testenv.Kafka(t, partitions)
			p := newPublisher(t, Config{Brokers: []string{addr}})
			res, err := p.Publish(context.Background(), tc.events...)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.ID != tc.events[i].ID {
					t.Errorf("result %d is for %q, want %q", i, r.ID, tc.events[i].ID)
				}
				if got := reasonOrEmpty(r.Err); got != tc.want[i] {
					t.Errorf("event %d: %v, want reason %q", i, r.Err, tc.want[i])
				}
				var re *schemas.RejectError
				if tc.want[i] == ReasonDuplicateID && errors.As(r.Err, &re) &&
					(re.Field != "id" || !strings.Contains(re.Detail, tc.detail) || !strings.Contains(re.Detail, "other content")) {
					t.Errorf("event %d: field %q detail %q, want field id naming %s and other content", i, re.Field, re.Detail, tc.detail)
				}
			}
			if n := recordsSent(t, addr); n != tc.records {
				t.Errorf("%d records sent, want %d", n, tc.records)
			}
		})
	}
}

// reasonOrEmpty is the reject reason of err, "" for nil.
func reasonOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return schemas.ReasonOf(err)
}

// TestPublishFileSameID: a line under an earlier valid line's id is not
// sent (the hub would drop it), across chunks: with other content it is a
// bad line, duplicate_id naming the earlier line (a correction the hub
// would ignore); with the same event it is a harmless repeat, counted and
// listed apart from the bad lines with the line it repeats, so that a file
// whose only fault is a repeated event is not a failure.
func TestPublishFileSameID(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}, Source: schemas.Housing})
	p.fileChunk = 2 // the earlier line in another chunk
	evs := bySource(t)[schemas.Housing]
	e, other, third := evs[0], evs[1], evs[2]
	corr := e
	corr.Time = e.Time.Add(-time.Hour)
	future := third
	future.Time = time.Now().AddDate(0, 1, 0)
	enc := func(ev schemas.Event) string {
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	lines := []string{
		enc(e),           // 1
		enc(other),       // 2
		enc(corr),        // 3: line 1's id, other content
		enc(e),           // 4: line 1 again
		enc(future),      // 5: invalid
		enc(third),       // 6: line 5's id, but line 5 was not sent
		" " + enc(e),     // 7: line 1's event, other white space
		enc(corr),        // 8: still line 1's id
		enc(other),       // 9: line 2 again
		"",               // 10
		enc(evs[3]),      // 11
		enc(evs[3])[:20], // 12: not JSON
	}
	path := filepath.Join(t.TempDir(), "h.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := p.PublishFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line   int
		reason string
		detail string
	}{
		{3, ReasonDuplicateID, "line 1 has the same event id and other content"},
		{5, schemas.ReasonNotCloudEvent, ""},
		{8, ReasonDuplicateID, "line 1 has the same event id and other content"},
		{12, schemas.ReasonNotJSON, ""},
	}
	// Lines 4, 7 (other white space, the same event) and 9 repeat earlier
	// lines: not sent, and not bad.
	wantRepeats := []LineRepeat{{Line: 4, First: 1}, {Line: 7, First: 1}, {Line: 9, First: 2}}
	if rep.Repeated != len(wantRepeats) || !slices.Equal(rep.Repeats, wantRepeats) {
		t.Errorf("%d repeated lines, listed %v; want %v", rep.Repeated, rep.Repeats, wantRepeats)
	}
	if len(rep.Bad) != len(want) || rep.BadLines != len(want) {
		t.Errorf("%d bad lines (%d listed), want %d: %v", rep.BadLines, len(rep.Bad), len(want), rep.Bad)
	}
	for i, w := range want {
		if i >= len(rep.Bad) {
			break
		}
		b := rep.Bad[i]
		var re *schemas.RejectError
		if b.Line != w.line || !errors.As(b.Err, &re) || re.Reason != w.reason || !strings.Contains(re.Detail, w.detail) ||
			w.reason == ReasonDuplicateID && re.Field != "id" {
			t.Errorf("bad line %d: %v, want line %d %s %q", i, b, w.line, w.reason, w.detail)
		}
	}
	if rep.Read != 11 || rep.Published != 4 {
		t.Errorf("%d read, %d published; want 11 and 4 (lines 1, 2, 6, 11)", rep.Read, rep.Published)
	}
	if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); n != 4 {
		t.Errorf("%d records on the topic, want 4", n)
	}
}

// TestPublishFileForeignSource: a publisher configured for one source
// reports a line of another source as that: field source, naming the
// source it publishes — not whatever else the hub would find wrong with
// the line first (its type, which belongs to the configured source).
func TestPublishFileForeignSource(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	p := newPublisher(t, Config{Brokers: []string{addr}, Source: schemas.Housing})
	evs := bySource(t)
	housing, err := schemas.Encode(evs[schemas.Housing][0])
	if err != nil {
		t.Fatal(err)
	}
	tax, err := schemas.Encode(evs[schemas.Tax][0])
	if err != nil {
		t.Fatal(err)
	}
	setSource := func(line []byte, from, to string) string {
		return strings.Replace(string(line), `"source":"`+from+`"`, `"source":"`+to+`"`, 1)
	}
	tests := []struct {
		name, line string
		other      string // the source the detail names besides housing
	}{
		{"a housing type under source health", setSource(housing, "housing", "health"), "health"},
		{"a tax event", string(tax), "tax"},
		{"a tax event with a bad subject", strings.Replace(string(tax), `"subject":"`, `"subject":"x`, 1), "tax"},
		{"not a department", setSource(housing, "housing", "police"), "police"},
		// A source holding a citizen ID (a column mapped to the wrong
		// attribute) is not repeated: the report goes to job logs.
		{"a source holding a citizen ID", setSource(housing, "housing", "src-110105194912310021"), "(a value holding 15 or more digits)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := p.PublishJSONL(context.Background(), strings.NewReader(tc.line+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			var re *schemas.RejectError
			if len(rep.Bad) != 1 || !errors.As(rep.Bad[0].Err, &re) {
				t.Fatalf("report %+v: want the line rejected", rep)
			}
			if re.Reason != schemas.ReasonSourceMismatch || re.Field != "source" ||
				!strings.Contains(re.Detail, `"housing" events`) || !strings.Contains(re.Detail, tc.other) || strings.Contains(re.Detail, "110105194912310021") {
				t.Errorf("%s: %s: want source_mismatch on field source, saying it publishes only housing events, not %s", re.Reason, re, tc.other)
			}
		})
	}
}
