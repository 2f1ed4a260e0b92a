package reconcile

import (
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
)

func rec(topic string, part int, off int64, id string) Record {
	r := Record{Loc: Loc{Topic: topic, Partition: part, Offset: off}}
	if id != "" {
		r.Key, r.HasKey = schemas.EventKey{Source: schemas.SourceOfTopic(topic), ID: id}, true
	}
	return r
}

func TestClassify(t *testing.T) {
	const h = "pop.events.housing"
	tests := []struct {
		name     string
		recs     []Record
		rejected []int // indexes of recs in the DLQ
		known    []string
		want     []Class
	}{
		{"empty", nil, nil, nil, []Class{}},
		{"applied once", []Record{rec(h, 0, 0, "a")}, nil, []string{"a"}, []Class{Applied}},
		{"re-sent id is a duplicate", []Record{rec(h, 0, 0, "a"), rec(h, 0, 1, "a"), rec(h, 0, 2, "a")}, nil, []string{"a"},
			[]Class{Applied, Duplicate, Duplicate}},
		{"duplicate across partitions", []Record{rec(h, 0, 5, "a"), rec(h, 1, 0, "a")}, nil, []string{"a"}, []Class{Applied, Duplicate}},
		{"rejected record in the DLQ", []Record{rec(h, 0, 0, "")}, []int{0}, nil, []Class{Rejected}},
		{"undecodable record not in the DLQ is a gap", []Record{rec(h, 0, 0, "")}, nil, nil, []Class{Gap}},
		{"key not in the store is a gap", []Record{rec(h, 0, 0, "a"), rec(h, 0, 1, "b")}, nil, []string{"a"}, []Class{Applied, Gap}},
		{"every copy of a lost key is a gap", []Record{rec(h, 0, 0, "b"), rec(h, 0, 1, "b")}, nil, nil, []Class{Gap, Gap}},
		{"a rejected copy does not claim its key", []Record{rec(h, 0, 0, "a"), rec(h, 0, 1, "a"), rec(h, 0, 2, "a")}, []int{0}, []string{"a"},
			[]Class{Rejected, Applied, Duplicate}},
		{"rejected wins over a known key", []Record{rec(h, 0, 0, "a")}, []int{0}, []string{"a"}, []Class{Rejected}},
		{"a record the hub takes for a marker is skipped", []Record{{Loc: Loc{Topic: h, Offset: 0}, Control: true}}, nil, nil, []Class{Skipped}},
		{"a skipped record is neither rejected nor a gap", []Record{{Loc: Loc{Topic: h, Offset: 0}, Control: true}, rec(h, 0, 1, "")}, []int{1}, nil,
			[]Class{Skipped, Rejected}},
		{"same id in two sources are two events",
			[]Record{rec("pop.events.health", 0, 0, "x"), rec(h, 0, 0, "x")}, nil, []string{"x"}, []Class{Gap, Applied}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rej := map[Loc]bool{}
			for _, i := range tc.rejected {
				rej[tc.recs[i].Loc] = true
			}
			known := map[schemas.EventKey]bool{}
			for _, id := range tc.known {
				known[schemas.EventKey{Source: schemas.Housing, ID: id}] = true
			}
			got := Classify(tc.recs, func(l Loc) bool { return rej[l] }, func(k schemas.EventKey) bool { return known[k] })
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEnvelopeKey(t *testing.T) {
	tests := []struct {
		name, value string
		wantID      string
		wantOK      bool
	}{
		{"envelope", `{"specversion":"1.0","id":"hs-1","source":"housing","data":{"x":1}}`, "hs-1", true},
		{"invalid data is still keyed", `{"id":"hs-2","source":"housing","data":"nonsense"}`, "hs-2", true},
		{"not JSON", `not json`, "", false},
		{"array", `[1,2]`, "", false},
		{"no id", `{"source":"housing"}`, "", false},
		{"empty id", `{"id":"","source":"housing"}`, "", false},
		{"numeric id", `{"id":7,"source":"housing"}`, "", false},
		{"other source", `{"id":"hs-3","source":"health"}`, "", false},
		{"no source", `{"id":"hs-3"}`, "", false},
		{"empty value", ``, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, ok := EnvelopeKey(schemas.Housing, []byte(tc.value))
			if ok != tc.wantOK || k.ID != tc.wantID || (ok && k.Source != schemas.Housing) {
				t.Errorf("EnvelopeKey = %+v, %v; want id %q, %v", k, ok, tc.wantID, tc.wantOK)
			}
		})
	}
}

func TestReportWrite(t *testing.T) {
	const h = "pop.events.housing"
	recs := []Record{rec(h, 0, 0, "a"), rec(h, 0, 1, "a"), rec(h, 0, 2, ""), rec(h, 1, 0, "230102199001011230-x"), rec(h, 1, 1, "")}
	classes := []Class{Applied, Duplicate, Rejected, Gap, Gap}
	r := Report{Sources: []SourceReport{{Source: schemas.Housing, Topic: h, InFlight: 3}}}
	r.Tally(recs, classes)
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `housing: 5 records up to committed offsets = 1 applied + 1 duplicates + 1 rejected; gap 2
  in flight: 3 records past the committed offsets (not checked)
  GAP pop.events.housing/1@0 event 2301**********1230-x: not in the DLQ and its event is not in the store
  GAP pop.events.housing/1@1 event -: not in the DLQ and not a decodable event of this source
all sources: 5 records up to committed offsets = 1 applied + 1 duplicates + 1 rejected; gap 2; in flight 3
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	if r.Gaps() != 2 {
		t.Errorf("Gaps() = %d, want 2", r.Gaps())
	}
}

func TestPartitionSpanExpiredUnread(t *testing.T) {
	tests := []struct {
		name string
		span PartitionSpan
		want int64
	}{
		{"nothing committed", PartitionSpan{LogStart: 4, Committed: -1, End: 6}, 0},
		{"committed past the log start", PartitionSpan{LogStart: 4, Committed: 5, End: 6}, 0},
		{"committed at the log start", PartitionSpan{LogStart: 4, Committed: 4, End: 6}, 0},
		{"committed below the log start", PartitionSpan{LogStart: 4, Committed: 2, End: 6}, 2},
		{"committed at 0, all deleted", PartitionSpan{LogStart: 6, Committed: 0, End: 6}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.span.ExpiredUnread(); got != tc.want {
				t.Errorf("ExpiredUnread() = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestReportGapsCountExpiredUnread: offsets retention deleted before the
// hub read them are lost records, so they count in Gaps, which decides the
// exit status of `pophub reconcile`.
func TestReportGapsCountExpiredUnread(t *testing.T) {
	r := Report{Sources: []SourceReport{
		{Source: schemas.Housing, Topic: "pop.events.housing", ExpiredUnread: 3, Gaps: []GapRecord{{}}},
		{Source: schemas.Health, Topic: "pop.events.health", ExpiredUnread: 2},
	}}
	if got := r.Gaps(); got != 6 {
		t.Errorf("Gaps() = %d, want 6", got)
	}
	if got := r.Total().ExpiredUnread; got != 5 {
		t.Errorf("Total().ExpiredUnread = %d, want 5", got)
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 12: "12", 999: "999", 1000: "1,000", 12345: "12,345", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := Commas(n); got != want {
			t.Errorf("Commas(%d) = %q, want %q", n, got, want)
		}
	}
}
