// Package storetest is the conformance suite every hub.Store passes: the
// PostgreSQL and memdb stores run the same test bodies, so that both keep
// the contract the hub relies on (atomic batches, idempotency, order
// independence, outbox order, no lost updates under concurrency). What a
// store must produce is derived from the pure merge rules (hub/merge)
// applied to the same events, never written down by hand.
//
// It also provides the event builders other tests use: Event and NewEvent
// build one validated event, ValidID makes citizen IDs, and Population
// generates a small synthetic population covering every event type.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// NewStore opens a fresh, empty store for one test and arranges its
// cleanup (the suite closes some stores itself; Close must be safe to call
// again).
type NewStore func(t *testing.T) hub.Store

// Run runs the suite, each case as a subtest on a store of its own.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s hub.Store)
	}{
		{"ApplyDerivesRecord", testApplyDerivesRecord},
		{"EmptyBatch", testEmptyBatch},
		{"HistoryInVersionOrder", testHistory},
		{"SubSecondTimesAgree", testSubSecondTimes},
		{"TimesInChinaStandardTime", testTimesInChinaStandardTime},
		{"DuplicatesAcrossBatches", testDuplicatesAcrossBatches},
		{"DuplicatesWithinBatch", testDuplicatesWithinBatch},
		{"ShuffledAndRepeatedGiveSameRecords", testOrderIndependence},
		{"LateEventGoesToHistoryOnly", testLateEvent},
		{"LifecycleFollowsTime", testLifecycleFollowsTime},
		{"UnknownPersonNotFound", testNotFound},
		{"OutboxFollowsMerge", testOutboxFollowsMerge},
		{"OutboxPagingAndPublishing", testOutboxPaging},
		{"OutboxSeqIncreasesAcrossBatches", testOutboxSeq},
		{"OutboxKeepsPublished", testOutboxKeepsPublished},
		{"StreamMarks", testStreamMarks},
		{"RestorationAnnouncedWhereTheDeathWas", testRestorationAnnouncedWhereTheDeathWas},
		{"Stats", testStats},
		{"KnownEvents", testKnownEvents},
		{"KnownEventsLimit", testKnownEventsLimit},
		{"PersonsWalksRegionInPages", testPersons},
		{"PersonsOfAHousehold", testHouseholds},
		{"CountsEqualRecount", testCounts},
		{"CountsAreOneSnapshot", testCountsOneSnapshot},
		{"ConcurrentApplyLosesNothing", testConcurrent},
		{"CanceledContext", testCanceled},
		{"CloseTwice", testCloseTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
	// It opens a store for each arrival order it tries.
	t.Run("CountsFollowTheRules", func(t *testing.T) { testCountsFollowRules(t, newStore) })
}

// Expected derives the records the events must produce, with the pure
// merge rules alone, applied in the given order as one batch.
func Expected(in []hub.Input) map[citizenid.ID]hub.Record {
	out := merge.Batch(nil, in, time.Now())
	recs := make(map[citizenid.ID]hub.Record, len(out.States))
	for id, st := range out.States {
		recs[id] = st.Record()
	}
	return recs
}

// ExpectedHistory derives every person's history from the pure merge
// rules, applying the events in the given order. Applied-at times are
// zero.
func ExpectedHistory(in []hub.Input) map[citizenid.ID][]hub.Change {
	out := merge.Batch(nil, in, time.Time{})
	h := map[citizenid.ID][]hub.Change{}
	for _, e := range out.History {
		h[e.CitizenID] = append(h[e.CitizenID], e.Change)
	}
	return h
}

// Normal drops what depends on arrival rather than content.
func Normal(r hub.Record) hub.Record {
	r.UpdatedAt = time.Time{}
	return r
}

// CompareRecords checks the store holds exactly the expected records, as
// the API would render them, ignoring updated_at.
func CompareRecords(t testing.TB, s hub.Store, want map[citizenid.ID]hub.Record) {
	t.Helper()
	for id, w := range want {
		got, err := s.Person(context.Background(), id)
		if err != nil {
			t.Fatalf("Person(%v): %v", id, err)
		}
		gb, err := json.Marshal(Normal(got))
		if err != nil {
			t.Fatalf("encoding record: %v", err)
		}
		wb, err := json.Marshal(Normal(w))
		if err != nil {
			t.Fatalf("encoding record: %v", err)
		}
		if string(gb) != string(wb) {
			t.Fatalf("person %v:\n got %s\nwant %s", id, gb, wb)
		}
	}
}

// normalChange drops the applied-at time, which depends on arrival, and
// leaves the event time as its RFC 3339 text (timeText): the zone is part
// of what the API answers, so both stores must keep the same one (China
// Standard Time, the zone schemas.Decode gives every event), and two
// time.Time values of one instant and offset may still differ in their
// *time.Location pointer, which reflect.DeepEqual would see.
func normalChange(c hub.Change) (hub.Change, string) {
	text := timeText(c.Time)
	c.AppliedAt, c.Time = time.Time{}, time.Time{}
	if len(c.Data) == 0 {
		c.Data = nil
	}
	return c, text
}

// timeText is t as the API renders it.
func timeText(t time.Time) string {
	b, err := t.MarshalJSON()
	if err != nil {
		return fmt.Sprintf("unencodable time %s: %v", t.Format(time.RFC3339Nano), err)
	}
	return string(b)
}

// CompareHistory checks the store holds exactly the expected histories,
// each event time as the same text (instant, offset and sub-second digits),
// and applied_at in UTC to the microsecond on every store (its value
// depends on arrival and is not compared).
func CompareHistory(t testing.TB, s hub.Store, want map[citizenid.ID][]hub.Change) {
	t.Helper()
	for id, w := range want {
		got, err := s.History(context.Background(), id)
		if err != nil {
			t.Fatalf("History(%v): %v", id, err)
		}
		if len(got) != len(w) {
			t.Fatalf("person %v: %d history entries, want %d", id, len(got), len(w))
		}
		for i := range got {
			if a := got[i].AppliedAt; a.Location() != time.UTC || !a.Equal(a.Truncate(time.Microsecond)) {
				t.Fatalf("person %v history[%d]: applied_at %s (%v), want UTC to the microsecond",
					id, i, a.Format(time.RFC3339Nano), a.Location())
			}
			g, gt := normalChange(got[i])
			e, et := normalChange(w[i])
			if gt != et || !reflect.DeepEqual(g, e) {
				gb, _ := json.Marshal(g)
				wb, _ := json.Marshal(e)
				t.Fatalf("person %v history[%d]:\n got %s at %s\nwant %s at %s", id, i, gb, gt, wb, et)
			}
		}
	}
}

// ApplyAll applies in in batches of batch events and sums the results.
func ApplyAll(t testing.TB, s hub.Store, in []hub.Input, batch int) hub.ApplyResult {
	t.Helper()
	var total hub.ApplyResult
	for i := 0; i < len(in); i += batch {
		res, err := s.Apply(context.Background(), in[i:min(i+batch, len(in))])
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		total.Applied += res.Applied
		total.Duplicates += res.Duplicates
		total.Notifications += res.Notifications
	}
	return total
}

// allPending reads every pending outbox entry, page by page.
func allPending(t testing.TB, s hub.Store, page int) []hub.OutboxEntry {
	t.Helper()
	var all []hub.OutboxEntry
	after := int64(0)
	for {
		got, err := s.PendingOutbox(context.Background(), after, page)
		if err != nil {
			t.Fatalf("PendingOutbox: %v", err)
		}
		if len(got) > page {
			t.Fatalf("PendingOutbox(limit %d) returned %d entries", page, len(got))
		}
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
		after = got[len(got)-1].Seq
	}
}

func subjects(in []hub.Input) map[citizenid.ID]int {
	n := map[citizenid.ID]int{}
	for _, e := range in {
		n[e.Event.Subject]++
	}
	return n
}

func storeStats(t testing.TB, s hub.Store) hub.StoreStats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func testApplyDerivesRecord(t *testing.T, s hub.Store) {
	in := population(t, 30, 11)
	types := map[schemas.Type]bool{}
	for _, e := range in {
		types[e.Event.Type] = true
	}
	if len(types) != len(schemas.Types()) {
		t.Fatalf("the population covers %d event types, want all %d", len(types), len(schemas.Types()))
	}
	want := merge.Batch(nil, in, time.Now())
	res := ApplyAll(t, s, in, 100)
	if res.Applied != len(in) || res.Duplicates != 0 {
		t.Errorf("applied %d duplicates %d, want %d and 0", res.Applied, res.Duplicates, len(in))
	}
	if res.Notifications != len(want.Outbox) {
		t.Errorf("%d notifications, want %d as merge derives", res.Notifications, len(want.Outbox))
	}
	CompareRecords(t, s, Expected(in))
	// The records carry what they must: versions count the events, and
	// updated_at is set by the store.
	for id, n := range subjects(in) {
		r, err := s.Person(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != int64(n) || r.CitizenID != id || r.UpdatedAt.IsZero() {
			t.Fatalf("person %v: version %d, id %v, updated_at %v; want version %d", id, r.Version, r.CitizenID, r.UpdatedAt, n)
		}
	}
}

func testEmptyBatch(t *testing.T, s hub.Store) {
	res, err := s.Apply(context.Background(), nil)
	if err != nil || res.Applied != 0 || res.Duplicates != 0 || res.Notifications != 0 || res.DuplicateAt != nil {
		t.Fatalf("Apply(nil) = %+v, %v; want nothing done and no error", res, err)
	}
	if st := storeStats(t, s); st != (hub.StoreStats{}) {
		t.Fatalf("stats after an empty batch: %+v", st)
	}
}

func testHistory(t *testing.T, s hub.Store) {
	in := population(t, 12, 12)
	for i := range in {
		in[i].Trace = map[string]string{"traceparent": fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)}
	}
	ApplyAll(t, s, in, 7)
	want := ExpectedHistory(in)
	CompareHistory(t, s, want)
	for id, h := range want {
		got, err := s.History(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		sections := 0
		for i, c := range got {
			if c.Version != int64(i+1) {
				t.Fatalf("person %v: history[%d].Version = %d", id, i, c.Version)
			}
			if c.AppliedAt.IsZero() || c.Sections == nil || len(c.Data) == 0 {
				t.Fatalf("person %v: history[%d] incomplete: %+v", id, i, c)
			}
			sections += len(c.Sections)
		}
		if sections == 0 {
			t.Fatalf("person %v: %d changes and no section changed", id, len(h))
		}
	}
	// Trace context travels onto the notifications.
	for _, e := range allPending(t, s, 1000) {
		if e.Trace["traceparent"] == "" {
			t.Fatalf("outbox entry %s lost its trace context", e.MsgID)
		}
	}
}

// testSubSecondTimes: an event time with nanoseconds is kept to the
// microsecond, the same in the golden record's provenance, in history and
// in the notification, whichever store holds it.
func testSubSecondTimes(t *testing.T, s hub.Store) {
	id := ValidID(777)
	at := time.Date(2020, 1, 1, 9, 0, 0, 123456789, time.UTC)
	want := at.Truncate(time.Microsecond)
	reg := Event(t, schemas.HukouRegistered, id, "ns-1", at, schemas.HukouRegisteredData{
		Name: "王伟", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly), Ethnicity: "01",
		AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"})
	ApplyAll(t, s, []hub.Input{reg}, 1)
	r, err := s.Person(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.History(context.Background(), id)
	if err != nil || len(h) != 1 {
		t.Fatalf("history %+v, %v", h, err)
	}
	if p := r.Provenance["hukou"].Time; !p.Equal(want) || !h[0].Time.Equal(want) {
		t.Errorf("event at %s: provenance time %s, history time %s; want both %s",
			at.Format(time.RFC3339Nano), p.Format(time.RFC3339Nano), h[0].Time.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	for _, e := range allPending(t, s, 100) {
		if !bytes.Contains(e.Body, []byte(`"time":"2020-01-01T17:00:00.123456+08:00"`)) {
			t.Errorf("notification %s: %s; want the time to the microsecond, in China Standard Time", e.MsgID, e.Body)
		}
	}
}

func testDuplicatesAcrossBatches(t *testing.T, s hub.Store) {
	ctx := context.Background()
	in := population(t, 12, 13)
	ApplyAll(t, s, in, 50)
	st1 := storeStats(t, s)
	pending1 := allPending(t, s, 1000)

	// All again, in one batch and then in small reversed batches.
	rev := slices.Clone(in)
	slices.Reverse(rev)
	for _, batch := range []int{len(in), 9} {
		res := ApplyAll(t, s, rev, batch)
		if res.Applied != 0 || res.Duplicates != len(in) || res.Notifications != 0 {
			t.Errorf("re-apply in batches of %d: applied %d duplicates %d notifications %d; want 0, %d, 0",
				batch, res.Applied, res.Duplicates, res.Notifications, len(in))
		}
	}
	if st2 := storeStats(t, s); st1 != st2 {
		t.Errorf("stats changed by duplicates: %+v → %+v", st1, st2)
	}
	if pending2 := allPending(t, s, 1000); len(pending2) != len(pending1) {
		t.Errorf("duplicates added outbox entries: %d → %d", len(pending1), len(pending2))
	}
	CompareRecords(t, s, Expected(in))
	CompareHistory(t, s, ExpectedHistory(in))

	// A repeat mixed with new events: only the new ones apply.
	extra := population(t, 3, 113)
	mixed := append(slices.Clone(in[:20]), extra...)
	res, err := s.Apply(ctx, mixed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != len(extra) || res.Duplicates != 20 {
		t.Errorf("mixed batch: applied %d duplicates %d, want %d and 20", res.Applied, res.Duplicates, len(extra))
	}
	if want := indexes(0, 20); !slices.Equal(res.DuplicateAt, want) {
		t.Errorf("mixed batch: duplicates at %v, want %v", res.DuplicateAt, want)
	}
	CompareRecords(t, s, Expected(append(slices.Clone(in), extra...)))
}

// indexes returns from, from+1, …, to-1.
func indexes(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func testDuplicatesWithinBatch(t *testing.T, s hub.Store) {
	in := population(t, 4, 14)
	batch := append(slices.Clone(in), in...)
	batch = append(batch, in[:5]...)
	res, err := s.Apply(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != len(in) || res.Duplicates != len(in)+5 {
		t.Errorf("batch with repeats: applied %d duplicates %d, want %d and %d", res.Applied, res.Duplicates, len(in), len(in)+5)
	}
	if want := indexes(len(in), len(batch)); !slices.Equal(res.DuplicateAt, want) {
		t.Errorf("batch with repeats: duplicates at %v, want the repeats' %v", res.DuplicateAt, want)
	}
	for id, n := range subjects(in) {
		r, err := s.Person(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != int64(n) {
			t.Errorf("person %v: version %d, want %d (one per distinct event)", id, r.Version, n)
		}
	}
	if st := storeStats(t, s); st.Changes != int64(len(in)) {
		t.Errorf("%d history rows, want %d", st.Changes, len(in))
	}
	CompareRecords(t, s, Expected(in))
}

func testOrderIndependence(t *testing.T, s hub.Store) {
	in := population(t, 20, 15)
	if len(in) < 200 {
		t.Fatalf("population of %d events; want a few hundred", len(in))
	}
	want := Expected(in)
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 3))
	shuffled := slices.Clone(in)
	for i := 0; i < len(in)/3; i++ {
		shuffled = append(shuffled, in[r.IntN(len(in))])
	}
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	applied, dups := 0, 0
	for i := 0; i < len(shuffled); {
		n := 1 + r.IntN(40)
		res, err := s.Apply(context.Background(), shuffled[i:min(i+n, len(shuffled))])
		if err != nil {
			t.Fatal(err)
		}
		applied += res.Applied
		dups += res.Duplicates
		i += n
	}
	if applied != len(in) || dups != len(shuffled)-len(in) {
		t.Errorf("seed %d: applied %d duplicates %d, want %d and %d", seed, applied, dups, len(in), len(shuffled)-len(in))
	}
	CompareRecords(t, s, want)
}

// testLateEvent applies an event older than a section's state: it lands in
// history and changes no section.
func testLateEvent(t *testing.T, s hub.Store) {
	id := ValidID(424242)
	day := func(d int) time.Time { return time.Date(2020, 1, d, 9, 0, 0, 0, time.UTC) }
	reg := Event(t, schemas.HukouRegistered, id, "late-1", day(1), schemas.HukouRegisteredData{
		Name: "王伟", Gender: id.Gender(), BirthDate: id.BirthDate().Format(time.DateOnly), Ethnicity: "01",
		AddressCode: "230102001001", HouseholdID: "H1", Reason: "birth"})
	newer := Event(t, schemas.HukouMigrated, id, "late-2", day(20), schemas.HukouMigratedData{
		FromAddressCode: "230102001001", ToAddressCode: "230103002002", Reason: "housing"})
	older := Event(t, schemas.HukouMigrated, id, "late-3", day(10), schemas.HukouMigratedData{
		FromAddressCode: "230102001001", ToAddressCode: "110105001024", Reason: "employment"})
	for _, in := range [][]hub.Input{{reg}, {newer}, {older}} {
		if _, err := s.Apply(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Person(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hukou == nil || r.Hukou.AddressCode != "230103002002" || r.Version != 3 {
		t.Fatalf("record %+v: want the newer migration's address and version 3", r)
	}
	h, err := s.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[2].EventID != "late-3" || len(h[2].Sections) != 0 {
		t.Fatalf("history %+v: want the late event third, changing no section", h)
	}
	CompareRecords(t, s, Expected([]hub.Input{reg, newer, older}))
}

func testNotFound(t *testing.T, s hub.Store) {
	ApplyAll(t, s, population(t, 2, 16), 100)
	id := ValidID(99_999_999)
	if _, err := s.Person(context.Background(), id); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("Person: %v, want ErrNotFound", err)
	}
	if _, err := s.History(context.Background(), id); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("History: %v, want ErrNotFound", err)
	}
}

// testOutboxFollowsMerge checks the entries are exactly merge's
// notifications, in merge's order, numbered in that order.
func testOutboxFollowsMerge(t *testing.T, s hub.Store) {
	in := population(t, 10, 17)
	want := merge.Batch(nil, in, time.Now()).Outbox
	// One batch after another, in order: the store must number entries in
	// apply order.
	ApplyAll(t, s, in, 25)
	got := allPending(t, s, 10_000)
	if len(got) != len(want) {
		t.Fatalf("%d outbox entries, want %d", len(got), len(want))
	}
	for i := range got {
		if i > 0 && got[i].Seq <= got[i-1].Seq {
			t.Fatalf("outbox seq not increasing: %d after %d", got[i].Seq, got[i-1].Seq)
		}
		if got[i].Subject != want[i].Subject || got[i].MsgID != want[i].MsgID {
			t.Fatalf("entry %d: %s %s, want %s %s", i, got[i].Subject, got[i].MsgID, want[i].Subject, want[i].MsgID)
		}
		if got[i].CreatedAt.IsZero() {
			t.Fatalf("entry %d has no creation time", i)
		}
		var g, w schemas.Notification
		if err := json.Unmarshal(got[i].Body, &g); err != nil {
			t.Fatalf("entry %d body %s: %v", i, got[i].Body, err)
		}
		if err := json.Unmarshal(want[i].Body, &w); err != nil {
			t.Fatal(err)
		}
		g.AppliedAt, w.AppliedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) || g.ChangeID != got[i].MsgID {
			t.Fatalf("entry %d body:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func testOutboxPaging(t *testing.T, s hub.Store) {
	ctx := context.Background()
	ApplyAll(t, s, population(t, 10, 18), 30)
	all := allPending(t, s, 1_000_000)
	if len(all) < 40 {
		t.Fatalf("only %d outbox entries", len(all))
	}
	// Pages of 7 give the same entries.
	paged := allPending(t, s, 7)
	if len(paged) != len(all) {
		t.Fatalf("paging gave %d entries, one read %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].Seq != all[i].Seq || paged[i].MsgID != all[i].MsgID {
			t.Fatalf("page entry %d differs", i)
		}
	}
	// after skips everything up to and including it.
	mid := all[len(all)/2].Seq
	rest, err := s.PendingOutbox(ctx, mid, len(all))
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != len(all)-len(all)/2-1 || rest[0].Seq <= mid {
		t.Fatalf("PendingOutbox(after %d) gave %d entries starting at %d", mid, len(rest), rest[0].Seq)
	}

	// Mark every other entry, twice: they disappear from pending, the rest
	// stay, in order.
	var marked []int64
	left := map[int64]bool{}
	for i, e := range all {
		if i%2 == 0 {
			marked = append(marked, e.Seq)
		} else {
			left[e.Seq] = true
		}
	}
	for range 2 {
		if err := s.MarkPublished(ctx, marked); err != nil {
			t.Fatalf("MarkPublished: %v", err)
		}
	}
	if err := s.MarkPublished(ctx, nil); err != nil {
		t.Fatalf("MarkPublished(nil): %v", err)
	}
	pending := allPending(t, s, 5)
	if len(pending) != len(left) {
		t.Fatalf("%d pending after marking %d of %d", len(pending), len(marked), len(all))
	}
	for _, e := range pending {
		if !left[e.Seq] {
			t.Fatalf("entry %d still pending after it was marked", e.Seq)
		}
	}
	if st := storeStats(t, s); st.OutboxPending != int64(len(left)) {
		t.Errorf("Stats.OutboxPending = %d, want %d", st.OutboxPending, len(left))
	}
	// Marking the rest empties the outbox.
	var rest2 []int64
	for seq := range left {
		rest2 = append(rest2, seq)
	}
	if err := s.MarkPublished(ctx, rest2); err != nil {
		t.Fatal(err)
	}
	if p := allPending(t, s, 100); len(p) != 0 {
		t.Fatalf("%d pending after marking all", len(p))
	}
	if st := storeStats(t, s); st.OutboxPending != 0 {
		t.Errorf("Stats.OutboxPending = %d after marking all", st.OutboxPending)
	}
}

// testOutboxKeepsPublished: published entries leave PendingOutbox and
// the pending count at once, but stay in PublishedOutbox, in Seq order,
// until DeletePublished removes them, so that a relay starting after NATS
// lost them can publish them again. Pending entries behind more
// published batches than a page holds are still found.
func testOutboxKeepsPublished(t *testing.T, s hub.Store) {
	ctx := context.Background()
	ApplyAll(t, s, population(t, 20, 23), 10)
	all := allPending(t, s, 1_000_000)
	if len(all) < 40 {
		t.Fatalf("only %d outbox entries", len(all))
	}
	// The first two thirds, and the last entry out of order.
	cut := len(all) * 2 / 3
	marked := append(slices.Clone(all[:cut]), all[len(all)-1])
	left := all[cut : len(all)-1]
	seqs := func(es []hub.OutboxEntry) []int64 {
		out := make([]int64, len(es))
		for i, e := range es {
			out[i] = e.Seq
		}
		return out
	}
	for range 2 { // marking twice is harmless
		if err := s.MarkPublished(ctx, seqs(marked)); err != nil {
			t.Fatalf("MarkPublished: %v", err)
		}
	}
	checkOutbox := func(stage string, pending, published []hub.OutboxEntry) {
		t.Helper()
		if got := allPending(t, s, 1); !reflect.DeepEqual(seqs(got), seqs(pending)) {
			t.Fatalf("%s: pending %v, want %v", stage, seqs(got), seqs(pending))
		}
		n, err := s.CountPendingOutbox(ctx)
		if err != nil || n != int64(len(pending)) {
			t.Fatalf("%s: CountPendingOutbox = %d, %v; want %d", stage, n, err, len(pending))
		}
		if st := storeStats(t, s); st.OutboxPending != n {
			t.Fatalf("%s: Stats.OutboxPending = %d, CountPendingOutbox %d", stage, st.OutboxPending, n)
		}
		for _, page := range []int{3, 1_000_000} {
			got := allPublished(t, s, page)
			if len(got) != len(published) {
				t.Fatalf("%s: %d published entries kept (pages of %d), want %d", stage, len(got), page, len(published))
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], published[i]) {
					t.Fatalf("%s: published entry %d (pages of %d):\n got %+v\nwant %+v", stage, i, page, got[i], published[i])
				}
			}
		}
	}
	wantPublished := append(slices.Clone(all[:cut]), all[len(all)-1])
	checkOutbox("after marking two thirds", left, wantPublished)
	// Nothing was acknowledged an hour ago.
	if err := s.DeletePublished(ctx, time.Hour); err != nil {
		t.Fatalf("DeletePublished: %v", err)
	}
	checkOutbox("after deleting those older than an hour", left, wantPublished)

	if err := s.MarkPublished(ctx, seqs(left)); err != nil {
		t.Fatal(err)
	}
	checkOutbox("after marking the rest", nil, all)
	if err := s.DeletePublished(ctx, 0); err != nil {
		t.Fatalf("DeletePublished: %v", err)
	}
	checkOutbox("after deleting all published", nil, nil)
}

// allPublished reads every published entry still kept, page by page.
func allPublished(t testing.TB, s hub.Store, page int) []hub.OutboxEntry {
	t.Helper()
	var all []hub.OutboxEntry
	after := int64(0)
	for {
		got, err := s.PublishedOutbox(context.Background(), after, page)
		if err != nil {
			t.Fatalf("PublishedOutbox: %v", err)
		}
		if len(got) > page {
			t.Fatalf("PublishedOutbox(limit %d) returned %d entries", page, len(got))
		}
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
		after = got[len(got)-1].Seq
	}
}

func testOutboxSeq(t *testing.T, s hub.Store) {
	ctx := context.Background()
	var last int64
	for round, seed := range []int64{19, 119, 219} {
		ApplyAll(t, s, population(t, 3, seed), 1000)
		fresh, err := s.PendingOutbox(ctx, last, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		if len(fresh) == 0 {
			t.Fatalf("round %d: no new outbox entries", round)
		}
		for i, e := range fresh {
			if e.Seq <= last {
				t.Fatalf("round %d: entry %d has seq %d, not above %d", round, i, e.Seq, last)
			}
			last = e.Seq
		}
		// Publishing everything does not make sequence numbers restart.
		seqs := make([]int64, len(fresh))
		for i, e := range fresh {
			seqs[i] = e.Seq
		}
		if err := s.MarkPublished(ctx, seqs); err != nil {
			t.Fatal(err)
		}
	}
}

func testStats(t *testing.T, s hub.Store) {
	in := population(t, 25, 20)
	res := ApplyAll(t, s, in, 64)
	st := storeStats(t, s)
	want := hub.StoreStats{Persons: int64(len(subjects(in))), Changes: int64(len(in)), OutboxPending: int64(res.Notifications)}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testPersons walks every region level and the whole population in
// pages of several sizes: each person whose hukou address lies in the
// region comes exactly once, as the stored record, and no one else; the
// cursor of a walk of everyone names no address.
func testPersons(t *testing.T, s hub.Store) {
	in := population(t, 120, 22)
	ApplyAll(t, s, in, 50)
	want := Expected(in)
	regions := map[string]bool{"": true}
	for _, r := range want {
		if r.Hukou == nil {
			continue
		}
		a := r.Hukou.AddressCode
		for _, n := range []int{2, 4, 6, 9, 12} {
			regions[a[:n]] = true
		}
	}
	regions["99"] = true // nobody lives there
	for region := range regions {
		for _, limit := range []int{1, 7, hub.MaxPersonsPage} {
			seen := map[citizenid.ID]bool{}
			after := ""
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("region %q, limit %d: the walk does not end", region, limit)
				}
				recs, next, err := s.Persons(context.Background(), hub.PersonQuery{Region: region, After: after, Limit: limit})
				if err != nil {
					t.Fatalf("Persons(%q, limit %d): %v", region, limit, err)
				}
				if len(recs) > limit {
					t.Fatalf("region %q: page of %d, limit %d", region, len(recs), limit)
				}
				for _, r := range recs {
					if seen[r.CitizenID] {
						t.Fatalf("region %q, limit %d: a person returned twice", region, limit)
					}
					seen[r.CitizenID] = true
					w, ok := want[r.CitizenID]
					if !ok || !reflect.DeepEqual(Normal(r), Normal(w)) {
						t.Fatalf("region %q: returned record differs from the stored one", region)
					}
				}
				if next == "" {
					break
				}
				if region == "" {
					// A walk of everyone is open to callers who may not
					// read hukou addresses: its cursor must not carry one.
					for _, w := range want {
						if w.Hukou != nil && strings.Contains(next, w.Hukou.AddressCode) {
							t.Fatalf("limit %d: the cursor of a walk of everyone holds a hukou address", limit)
						}
					}
				}
				after = next
			}
			n := 0
			for id, r := range want {
				in := region == "" || (r.Hukou != nil && strings.HasPrefix(r.Hukou.AddressCode, region))
				if in {
					n++
				}
				if in != seen[id] {
					t.Fatalf("region %q, limit %d: person in region %v, returned %v", region, limit, in, seen[id])
				}
			}
			if region == "99" && n != 0 {
				t.Fatal("test population lives in region 99")
			}
		}
	}
	for _, q := range []hub.PersonQuery{{Limit: 0}, {Limit: hub.MaxPersonsPage + 1}, {Region: "23x", Limit: 5}, {Region: "1234567890123", Limit: 5}} {
		if _, _, err := s.Persons(context.Background(), q); !errors.Is(err, hub.ErrInvalid) {
			t.Errorf("Persons(%+v) = %v, want ErrInvalid", q, err)
		}
	}
}

// testCounts applies a population with migrations, deaths, cancellations
// and restorations, shuffled, repeated and in batches of varying size, and
// checks the counts at every level and many dates against a recount of the
// registration spans derived from all events at once.
func testCounts(t *testing.T, s hub.Store) {
	in := population(t, 150, 23)
	// Restorations: a few persons' hukou cancelled and registered again
	// elsewhere, the re-registration arriving before the cancellation.
	var restored []citizenid.ID
	for id := range subjects(in) {
		if len(restored) < 5 {
			restored = append(restored, id)
		}
	}
	for i, id := range restored {
		at := time.Date(2025, 3, 1+i, 9, 0, 0, 0, cst)
		in = append(in,
			Event(t, schemas.HukouRegistered, id, fmt.Sprintf("ps-restore-%d", i), at.AddDate(0, 2, 0), schemas.HukouRegisteredData{
				Name: "王芳", Gender: "2", BirthDate: "1990-01-01", Ethnicity: "01", AddressCode: "110105001024", HouseholdID: "HR1", Reason: "restored"}),
			Event(t, schemas.HukouCancelled, id, fmt.Sprintf("ps-cancel-%d", i), at, schemas.HukouCancelledData{Reason: "emigration"}))
	}
	// Movers: a few persons hold a permit in Harbin written with a
	// district's code, move to Daqing (which ends Harbin's), and get a
	// revocation written with another Harbin district's code.
	ids := slices.Sorted(maps.Keys(subjects(in)))
	for i, id := range ids[len(ids)-6:] {
		at := time.Date(2019, 3, 1+i, 9, 0, 0, 0, cst)
		in = append(in,
			Event(t, schemas.ResidencePermitIssued, id, fmt.Sprintf("ps-move-a-%d", i), at, schemas.ResidencePermitIssuedData{
				CityCode: "230103", AddressCode: "230103002002", Basis: "employment", ValidUntil: date(at.AddDate(2, 0, 0))}),
			Event(t, schemas.ResidencePermitIssued, id, fmt.Sprintf("ps-move-b-%d", i), at.AddDate(0, 4+i, 0), schemas.ResidencePermitIssuedData{
				CityCode: "230600", AddressCode: "230602013001", Basis: "employment", ValidUntil: date(at.AddDate(3, 0, 0))}),
			Event(t, schemas.ResidencePermitRevoked, id, fmt.Sprintf("ps-move-x-%d", i), at.AddDate(0, 2*i, 10), schemas.ResidencePermitRevokedData{
				CityCode: "230102"}))
	}
	r := rand.New(rand.NewPCG(23, 1))
	shuffled := slices.Clone(in)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	shuffled = append(shuffled, shuffled[:len(shuffled)/5]...) // repeats
	for i := 0; i < len(shuffled); {
		n := 1 + r.IntN(60)
		if _, err := s.Apply(context.Background(), shuffled[i:min(i+n, len(shuffled))]); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		i += n
	}
	spans, permits := ExpectedSpans(in)
	regions := map[string]bool{}
	for _, ivs := range spans {
		for _, iv := range ivs {
			for _, n := range []int{2, 4, 6, 9, 12} {
				regions[iv.Code[:n]] = true
			}
		}
	}
	for _, ivs := range permits {
		for _, iv := range ivs {
			for _, n := range []int{2, 4, 6} {
				regions[iv.Code[:n]] = true
			}
		}
	}
	var list []string
	for reg := range regions {
		list = append(list, reg)
	}
	slices.Sort(list)
	days := []string{"2015-12-31", "2016-01-01", "2020-02-29", "2024-12-31", "2025-03-03", "2025-04-15", "2025-05-03", time.Now().Format(time.DateOnly)}
	for range 20 {
		days = append(days, genStart.AddDate(0, 0, r.IntN(genDays)).Format(time.DateOnly))
	}
	nonzero := 0
	for _, d := range days {
		got, err := s.Counts(context.Background(), hub.CountQuery{Regions: append(list, "99"), AsOf: d})
		if err != nil {
			t.Fatalf("Counts as of %s: %v", d, err)
		}
		want := Recount(spans, permits, list, d)
		want["99"] = hub.Tally{}
		for _, reg := range append(list, "99") {
			if got[reg] != want[reg] {
				t.Fatalf("region %s as of %s: counters %+v, recount %+v", reg, d, got[reg], want[reg])
			}
			if got[reg] != (hub.Tally{}) {
				nonzero++
			}
		}
	}
	if nonzero < len(list) {
		t.Fatalf("only %d nonzero counts: the scenario counts too little to test", nonzero)
	}
	if v, ok := s.(CounterVerifier); ok {
		diffs, err := v.VerifyCounters(context.Background())
		if err != nil || len(diffs) > 0 {
			t.Fatalf("VerifyCounters: %d counters differ from the recount (%v); first: %+v", len(diffs), err, diffs[:min(len(diffs), 1)])
		}
		before, err := s.Counts(context.Background(), hub.CountQuery{Regions: list, AsOf: "2022-12-31"})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := v.RebuildCounters(context.Background()); err != nil || n != int64(len(spans)) {
			t.Fatalf("RebuildCounters: %d persons (want %d), %v", n, len(spans), err)
		}
		after, err := s.Counts(context.Background(), hub.CountQuery{Regions: list, AsOf: "2022-12-31"})
		if err != nil || !reflect.DeepEqual(before, after) {
			t.Fatalf("counts changed by a rebuild: %v → %v (%v)", before, after, err)
		}
	}
	if _, err := s.Counts(context.Background(), hub.CountQuery{Regions: []string{"23"}, AsOf: "2026-02-30"}); !errors.Is(err, hub.ErrInvalid) {
		t.Errorf("Counts with a bad date: %v, want ErrInvalid", err)
	}
}

// testConcurrent applies overlapping batches from several goroutines, as
// several consumers (or hub instances) would: every worker applies every
// event, in its own order, so each event must be applied exactly once
// overall and counted as a duplicate by the others.
func testConcurrent(t *testing.T, s hub.Store) {
	in := population(t, 30, 21)
	want := Expected(in)
	const workers = 4
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		total     hub.ApplyResult
		firstErr  error
		batchSize = 40
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			mine := slices.Clone(in)
			r.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			for i := 0; i < len(mine); i += batchSize {
				res, err := s.Apply(context.Background(), mine[i:min(i+batchSize, len(mine))])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				total.Applied += res.Applied
				total.Duplicates += res.Duplicates
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("concurrent Apply: %v", firstErr)
	}
	if total.Applied != len(in) || total.Duplicates != (workers-1)*len(in) {
		t.Errorf("applied %d duplicates %d, want %d and %d", total.Applied, total.Duplicates, len(in), (workers-1)*len(in))
	}
	for id, n := range subjects(in) {
		r, err := s.Person(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != int64(n) {
			t.Fatalf("person %v: version %d, want %d: an update was lost or applied twice", id, r.Version, n)
		}
		h, err := s.History(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range h {
			if c.Version != int64(i+1) {
				t.Fatalf("person %v: history[%d] has version %d", id, i, c.Version)
			}
		}
	}
	CompareRecords(t, s, want)
	if st := storeStats(t, s); st.Changes != int64(len(in)) {
		t.Errorf("%d history rows, want %d: an event was applied twice or lost", st.Changes, len(in))
	}
}

func testCanceled(t *testing.T, s hub.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := population(t, 2, 22)
	if _, err := s.Apply(ctx, in); err == nil {
		t.Error("Apply with a canceled context succeeded")
	}
	if st := storeStats(t, s); st.Changes != 0 || st.Persons != 0 {
		t.Errorf("a canceled Apply left %+v", st)
	}
	// The store still works afterwards.
	if res := ApplyAll(t, s, in, 1000); res.Applied != len(in) {
		t.Errorf("after a canceled Apply: applied %d of %d", res.Applied, len(in))
	}
}

func testCloseTwice(t *testing.T, s hub.Store) {
	ApplyAll(t, s, population(t, 2, 23), 100)
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
