package watch_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/eligibility/watch"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/notify"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// countingReader counts the persons a watcher decides (reads of a record).
type countingReader struct {
	eligibility.Reader
	reads atomic.Int64
}

func (c *countingReader) Person(ctx context.Context, id citizenid.ID) (hub.Record, error) {
	c.reads.Add(1)
	return c.Reader.Person(ctx, id)
}

func (c *countingReader) History(ctx context.Context, id citizenid.ID) ([]hub.Change, error) {
	c.reads.Add(1)
	return c.Reader.History(ctx, id)
}

// startPeer runs a second hub instance's watcher on the rig's NATS server
// and store, as `pophub serve --eligibility-notify <watched>` on another
// host; it returns the reader it decides through and its stop.
func startPeer(t *testing.T, r *rig, watched ...string) (*countingReader, func()) {
	t.Helper()
	rd := &countingReader{Reader: r.store}
	_, stop := startWatching(t, r, rd, watched)
	time.Sleep(500 * time.Millisecond) // its consumer is the rig's, already there
	return rd, stop
}

// TestQualifyingDayAfterScaleDown: two instances watch the same policy,
// and one decides a person who qualifies tomorrow. Whichever is stopped
// (scaled back to one), the other, started earlier, announces the person
// on the day: every instance follows the days every instance saves.
func TestQualifyingDayAfterScaleDown(t *testing.T) {
	r := newRig(t, time.Date(2025, 3, 1, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqing(t, "2023-03-03", "2023-02..2025-01") // qualifies on 2025-03-02 once the last month is paid
	r.apply(t, in[:len(in)-1])                            // one month short: no qualifying day yet
	r.expect(t, nil, 2*time.Second)
	// A second instance starts (it reads the bucket's qualifying days: none).
	peer, stopPeer := startPeer(t, r, "heilongjiang/daqing")
	r.apply(t, in[len(in)-1:]) // the last month: one change notification, decided by one instance
	r.expect(t, nil, 2*time.Second)
	if peer.reads.Load() > 0 {
		t.Log("the peer decided the person: scaling back to the rig's instance")
		stopPeer()
	} else {
		t.Log("the rig's instance decided the person: scaling back to the peer")
		r.stop()
		r.stop = func() {}
	}
	tomorrow := time.Date(2025, 3, 2, 12, 0, 0, 0, china)
	r.now.Store(&tomorrow)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 15*time.Second)
}

// slowReader is an instance whose store reads are slow (a loaded
// PostgreSQL, a GC pause) while another instance decides the same person:
// its first decision of subject answers from stale, the store as it was
// one change earlier, and only once gate is closed; a decision made again
// (it reads subject's record again) answers from fresh, the store as it
// now is.
type slowReader struct {
	stale, fresh eligibility.Reader
	subject      citizenid.ID
	gate         chan struct{}
	in           chan struct{} // closed at the first stale read
	entered      sync.Once
	mu           sync.Mutex
	decisions    int // reads of subject's record
}

// from is the store a read answers from, and done waits for the gate when
// that is the stale one; reading names the person whose record is read.
func (g *slowReader) from(reading citizenid.ID) (r eligibility.Reader, done func()) {
	g.mu.Lock()
	if reading == g.subject {
		g.decisions++
	}
	first := g.decisions <= 1
	g.mu.Unlock()
	if !first {
		return g.fresh, func() {}
	}
	g.entered.Do(func() { close(g.in) })
	return g.stale, func() { <-g.gate }
}

func (g *slowReader) Person(ctx context.Context, id citizenid.ID) (hub.Record, error) {
	r, done := g.from(id)
	defer done()
	return r.Person(ctx, id)
}

func (g *slowReader) History(ctx context.Context, id citizenid.ID) ([]hub.Change, error) {
	r, done := g.from("")
	defer done()
	return r.History(ctx, id)
}

func (g *slowReader) Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	r, done := g.from("")
	defer done()
	return r.Persons(ctx, q)
}

// notesOf is one change notification per section of the person's last
// change, as the relay publishes them.
func notesOf(t *testing.T, s *memdb.Store, id citizenid.ID) []schemas.Notification {
	t.Helper()
	hist, err := s.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c := hist[len(hist)-1]
	var out []schemas.Notification
	for _, sec := range c.Sections {
		out = append(out, schemas.Notification{ChangeID: c.EventID + "/" + sec, CitizenID: id, Version: c.Version,
			Section: sec, EventID: c.EventID, EventType: c.Type, Source: c.Source, Time: c.Time, AppliedAt: c.AppliedAt})
	}
	return out
}

// TestSlowInstanceDoesNotUndoAnnouncement: two instances share the
// watcher's consumer, so two notifications of one person (its last two
// changes) go to different instances. Instance A decides from the store
// as it was before the last change (not yet eligible) and is slow; B
// decides from the last change (eligible), announces and saves the
// decision. A used to read the last decision only after deciding, and so
// saved its stale "not eligible" over B's: the bucket forgot the
// announcement, and the person's next change, on a later day, announced
// them as newly eligible a second time, with another change_id (which
// the SDK cannot drop). A now reads the last decision before deciding,
// so B's save makes A decide again, from the store as it now is.
func TestSlowInstanceDoesNotUndoAnnouncement(t *testing.T) {
	ctx := context.Background()
	js, cat := streamAndCatalog(t)
	// The shared store, and a copy of it as it was one change earlier.
	store, before := openStore(t), openStore(t)

	id, in := daqing(t, "2023-03-01", "2023-04..2025-02") // 23 months: one short
	_, more := daqing(t, "2023-03-01", "2025-03..2025-03")
	last := more[len(more)-1]
	last.Event.ID = "si-2025-03"
	for _, s := range []*memdb.Store{store, before} {
		if _, err := s.Apply(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	notesBefore := notesOf(t, before, id)
	if _, err := store.Apply(ctx, []hub.Input{last}); err != nil {
		t.Fatal(err)
	}
	notesLast := notesOf(t, store, id)

	now := time.Date(2025, 4, 10, 12, 0, 0, 0, china)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	gated := &slowReader{stale: before, fresh: store, subject: id, gate: make(chan struct{}), in: make(chan struct{})}
	ws := watchers(t, js, cat, clock, "heilongjiang/daqing", gated, store)
	a, b := ws[0], ws[1]
	announcements := eligibilityAnnouncements(t, js)

	// A takes the earlier notification and reads the store before the
	// last change lands; B takes the last change's notification.
	aDone := make(chan error, 1)
	go func() { _, err := a.Process(ctx, notesBefore); aDone <- err }()
	<-gated.in
	if _, err := b.Process(ctx, notesLast); err != nil {
		t.Fatal(err)
	}
	close(gated.gate)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}

	// Days later, another contribution of the eligible person.
	mu.Lock()
	now = time.Date(2025, 5, 12, 12, 0, 0, 0, china)
	mu.Unlock()
	_, more = daqing(t, "2023-03-01", "2025-04..2025-04")
	next := more[len(more)-1]
	next.Event.ID = "si-2025-04"
	if _, err := store.Apply(ctx, []hub.Input{next}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Process(ctx, notesOf(t, store, id)); err != nil {
		t.Fatal(err)
	}

	if announced := announcements(); len(announced) != 1 {
		for _, n := range announced {
			t.Logf("announced: change_id %s as_of %s trigger %s", n.ChangeID, n.AsOf, n.Trigger)
		}
		t.Fatalf("the person became eligible once but was announced %d times", len(announced))
	}
}

// TestConfirmedDecisionNotLostToStalePeer: an eligible, announced
// person's hukou is cancelled by mistake and restored the same morning
// (two changes, two notifications, two instances). B decides from the
// store after the cancellation only (not eligible) and saves that a
// moment late; A decides from the store after the restoration (eligible
// again), which equals the last decision it read before deciding. Had A
// not saved a decision that changes nothing, B's stale "not eligible"
// would stay in the bucket, and the person's next change on a later day
// would announce them again under another change_id.
func TestConfirmedDecisionNotLostToStalePeer(t *testing.T) {
	ctx := context.Background()
	js, cat := streamAndCatalog(t)
	store, mid := openStore(t), openStore(t) // mid: the store after the cancellation, before the restoration

	id, in := daqing(t, "2023-03-01", "2023-04..2025-03") // 24 months: eligible
	cancel := storetest.Event(t, schemas.HukouCancelled, id, "ps-c1", time.Date(2025, 4, 10, 8, 0, 0, 0, china),
		schemas.HukouCancelledData{Reason: "emigration"})
	restore := storetest.Event(t, schemas.HukouRegistered, id, "ps-r2", time.Date(2025, 4, 10, 9, 0, 0, 0, china),
		schemas.HukouRegisteredData{Name: "张伟", Gender: "1", BirthDate: "1990-01-01", Ethnicity: "01",
			AddressCode: "231221100200", HouseholdID: "H1", Reason: "restored"})
	for _, s := range []*memdb.Store{store, mid} {
		if _, err := s.Apply(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	notesEligible := notesOf(t, store, id)

	now := time.Date(2025, 4, 10, 12, 0, 0, 0, china)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	paused := &slowReader{stale: store, fresh: store, subject: id, gate: make(chan struct{}), in: make(chan struct{})}
	ws := watchers(t, js, cat, clock, "heilongjiang/daqing", paused, mid, store)
	a, b, c := ws[0], ws[1], ws[2]
	announcements := eligibilityAnnouncements(t, js)

	// The person turns eligible and is announced.
	if _, err := c.Process(ctx, notesEligible); err != nil {
		t.Fatal(err)
	}

	// The cancellation lands; B takes its notification and decides from
	// the store as it then is.
	for _, s := range []*memdb.Store{store, mid} {
		if _, err := s.Apply(ctx, []hub.Input{cancel}); err != nil {
			t.Fatal(err)
		}
	}
	notesCancel := notesOf(t, mid, id)
	// The restoration lands; A takes its notification, reads the last
	// decision (eligible), and is slow to read the store.
	if _, err := store.Apply(ctx, []hub.Input{restore}); err != nil {
		t.Fatal(err)
	}
	notesRestore := notesOf(t, store, id)
	aDone := make(chan error, 1)
	go func() { _, err := a.Process(ctx, notesRestore); aDone <- err }()
	<-paused.in
	// B saves its decision of the store before the restoration.
	if _, err := b.Process(ctx, notesCancel); err != nil {
		t.Fatal(err)
	}
	close(paused.gate)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}

	// Weeks later, another contribution of the eligible person.
	mu.Lock()
	now = time.Date(2025, 5, 12, 12, 0, 0, 0, china)
	mu.Unlock()
	_, more := daqing(t, "2023-03-01", "2025-04..2025-04")
	next := more[len(more)-1]
	next.Event.ID = "si-2025-04"
	if _, err := store.Apply(ctx, []hub.Input{next}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Process(ctx, notesOf(t, store, id)); err != nil {
		t.Fatal(err)
	}

	ids := map[string]bool{}
	announced := announcements()
	for _, n := range announced {
		ids[n.ChangeID] = true
	}
	for _, n := range announced {
		t.Logf("announced: change_id %s as_of %s trigger %s", n.ChangeID, n.AsOf, n.Trigger)
	}
	if len(ids) != 1 {
		t.Fatalf("the person, eligible again on 2025-04-10 by the restoration, was announced under %d change_ids", len(ids))
	}
}

// streamAndCatalog starts an embedded NATS server holding the hub's
// notification stream, and loads the shipped policies: what a test that
// calls Process itself needs besides a store.
func streamAndCatalog(t *testing.T) (jetstream.JetStream, *eligibility.Catalog) {
	t.Helper()
	srv := testenv.NATS(t, embedded.NATSConfig{})
	js := testenv.JetStream(t, srv.ClientURL())
	if err := notify.EnsureStream(context.Background(), js, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	return js, cat
}

// openStore opens an empty memdb store, closed when the test ends.
func openStore(t *testing.T) *memdb.Store {
	t.Helper()
	s, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// watchers opens a watcher of policy per reader on js, as the instances
// of one hub group, each deciding through its reader.
func watchers(t *testing.T, js jetstream.JetStream, cat *eligibility.Catalog, now func() time.Time, policy string,
	readers ...eligibility.Reader) []*watch.Watcher {
	t.Helper()
	ranBefore(t, js)
	var ws []*watch.Watcher
	for _, r := range readers {
		w, err := watch.New(watch.Config{JS: js, Store: r, Catalog: cat, Policies: []string{policy}, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

// eligibilityAnnouncements subscribes to pop.eligibility as a subscriber
// does; the function it returns waits 2 s and returns what arrived.
func eligibilityAnnouncements(t *testing.T, js jetstream.JetStream) func() []schemas.EligibilityNotification {
	t.Helper()
	cons, err := js.CreateOrUpdateConsumer(context.Background(), schemas.StreamName, jetstream.ConsumerConfig{
		FilterSubject: schemas.EligibilityFilter("", ""), AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan jetstream.Msg, 16)
	cc, err := cons.Consume(func(m jetstream.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return func() []schemas.EligibilityNotification {
		var announced []schemas.EligibilityNotification
		deadline := time.After(2 * time.Second)
		for {
			select {
			case m := <-got:
				var n schemas.EligibilityNotification
				if err := json.Unmarshal(m.Data(), &n); err != nil {
					t.Fatal(err)
				}
				announced = append(announced, n)
			case <-deadline:
				return announced
			}
		}
	}
}
