package watch_test

import (
	"context"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/eligibility/watch"
)

// gatedReader lets the first Persons call through (open's "does the
// store hold persons?") and holds every later one (the walk) while armed,
// until its context ends: a walk of a city's store, minutes long.
type gatedReader struct {
	eligibility.Reader
	armed   atomic.Bool
	inWalk  chan struct{}
	release chan struct{}
	// onePage, when set, lets the walk's first page through as a page of
	// one person (recorded in first), and holds the next.
	onePage bool
	pages   atomic.Int64
	first   atomic.Value
}

func newGated(r eligibility.Reader) *gatedReader {
	g := &gatedReader{Reader: r, inWalk: make(chan struct{}, 16), release: make(chan struct{})}
	g.armed.Store(true)
	return g
}

func (g *gatedReader) Persons(ctx context.Context, q hub.PersonQuery) ([]hub.Record, string, error) {
	if q.Limit > 1 && g.armed.Load() {
		if g.onePage && g.pages.Add(1) == 1 {
			q.Limit = 1
			recs, next, err := g.Reader.Persons(ctx, q)
			if len(recs) == 1 {
				g.first.Store(recs[0].CitizenID)
			}
			return recs, next, err
		}
		select {
		case g.inWalk <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-g.release:
		}
	}
	return g.Reader.Persons(ctx, q)
}

// startWith runs a watcher deciding through rd under the rig's policies,
// logging to the rig's log.
func startWith(t *testing.T, r *rig, rd eligibility.Reader) (*watch.Watcher, func()) {
	return startWatching(t, r, rd, r.watched)
}

// startWatching runs a watcher deciding through rd under watched,
// logging to the rig's log, and stopped when the test ends.
func startWatching(t *testing.T, r *rig, rd eligibility.Reader, watched []string) (*watch.Watcher, func()) {
	t.Helper()
	w, err := watch.New(watch.Config{JS: r.js, Store: rd, Catalog: r.cat, Policies: watched,
		Now: func() time.Time { return *r.now.Load() }, Logger: slog.New(slog.NewTextHandler(&r.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return w, stop
}

func waitWalk(t *testing.T, g *gatedReader) {
	t.Helper()
	select {
	case <-g.inWalk:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not start walking the store")
	}
}

// TestBucketLostOnAQuietDayIsMadeAgain: a person qualifying tomorrow is
// announced on the day although the bucket of last decisions went (alone,
// on a day without change notifications to reveal it): the watcher makes
// it again within seconds, and until it has, /readyz says why.
func TestBucketLostOnAQuietDayIsMadeAgain(t *testing.T) {
	r := newRig(t, time.Date(2025, 3, 1, 12, 0, 0, 0, china), "heilongjiang/daqing")
	r.stop()
	g := newGated(r.store)
	g.armed.Store(false)
	w, _ := startWith(t, r, g)
	time.Sleep(500 * time.Millisecond)
	id, in := daqing(t, "2023-03-03", "2023-01..2025-01") // qualifies tomorrow
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)

	if err := r.js.DeleteKeyValue(context.Background(), "pophub_eligibility"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	_, err := r.js.KeyValue(context.Background(), "pophub_eligibility")
	if err != nil && w.Problem() == nil {
		t.Errorf("3 s after the bucket went: not made again (%v), and Problem() is nil (/readyz ready)", err)
	}
	tomorrow := time.Date(2025, 3, 2, 12, 0, 0, 0, china)
	r.now.Store(&tomorrow)
	select {
	case <-r.got:
	case <-time.After(15 * time.Second):
		t.Errorf("no announcement on the qualifying day of %s; log:\n%s", id, r.log.String())
	}
}

// TestNotReadyWhileRebuilding: while the watcher decides every person of
// the store again after its bucket went (minutes per policy in a city),
// it decides no change notification; on-call relies on /readyz failing
// under eligibility meanwhile.
func TestNotReadyWhileRebuilding(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	r.stop()
	g := newGated(r.store)
	g.armed.Store(false)
	w, _ := startWith(t, r, g)
	time.Sleep(500 * time.Millisecond)
	_, in := daqing(t, "2023-03-01", "2023-04..2025-02")
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)

	g.armed.Store(true)
	if err := r.js.DeleteKeyValue(context.Background(), "pophub_eligibility"); err != nil {
		t.Fatal(err)
	}
	_, more := daqing(t, "2023-03-01", "2025-03..2025-03")
	last := more[len(more)-1]
	last.Event.ID = "si-2025-03"
	r.apply(t, []hub.Input{last})
	waitWalk(t, g)
	time.Sleep(2 * time.Second)
	if w.Problem() == nil {
		t.Errorf("Problem() nil while the watcher walks the store and decides no notification; log:\n%s", r.log.String())
	}
	close(g.release)
	for deadline := time.Now().Add(10 * time.Second); w.Problem() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Problem() still %v after the walk", w.Problem())
		}
	}
}

// TestPeerAnnouncesNobodyAgainWhileAnotherRebuilds: after NATS lost its
// store, one instance makes the bucket again and decides the store's
// persons again (minutes in a city); a peer starting meanwhile must not
// take the empty bucket for "nobody eligible before": subscribers rely on
// persons announced before not being announced again.
func TestPeerAnnouncesNobodyAgainWhileAnotherRebuilds(t *testing.T) {
	r := newRig(t, time.Date(2025, 3, 1, 12, 0, 0, 0, china), "heilongjiang/daqing")
	announced, in := daqingBorn(t, "1992-03-03", "2023-01-01", "2023-01..2025-01")
	r.apply(t, in)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: announced, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)

	r.stop()
	if err := r.js.DeleteKeyValue(context.Background(), "pophub_eligibility"); err != nil {
		t.Fatal(err)
	}
	r.loseStream(t)
	// Instance A: creates the bucket, walks (slowly).
	g := newGated(r.store)
	startWith(t, r, g)
	waitWalk(t, g)
	// Instance B restarts a moment later.
	r.start(t)

	_, more := daqingBorn(t, "1992-03-03", "2023-01-01", "2025-02..2025-02")
	again := more[len(more)-1]
	again.Event.ID = "si-announced-2025-02"
	r.apply(t, []hub.Input{again})
	r.expect(t, nil, 3*time.Second)
}

// TestChangeDuringAnInterruptedRebuildIsDecided: a hub stopped while it
// decides the store's persons again (a rollout, a crash) walks again at
// its restart, and decides the changes published since the first walk
// began: a person the walk reached, and whose qualifying change came
// during it, is announced.
func TestChangeDuringAnInterruptedRebuildIsDecided(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	births := []string{"1991-02-02", "1993-05-05"}
	for _, b := range births {
		_, in := daqingBorn(t, b, "2023-03-01", "2023-04..2025-02") // 23 months: one short
		r.apply(t, in)
	}
	r.expect(t, nil, 1500*time.Millisecond)

	r.stop()
	if err := r.js.DeleteKeyValue(context.Background(), "pophub_eligibility"); err != nil {
		t.Fatal(err)
	}
	r.loseStream(t)
	g := newGated(r.store)
	g.onePage = true
	_, stop := startWith(t, r, g)
	waitWalk(t, g) // the first page (one person, Q) decided, the second held
	q, _ := g.first.Load().(citizenid.ID)
	var change hub.Input
	for _, b := range births {
		id, _ := daqingBorn(t, b, "2023-03-01", "2023-04..2025-02")
		if id == q {
			_, more := daqingBorn(t, b, "2023-03-01", "2025-03..2025-03")
			change = more[len(more)-1]
			change.Event.ID = b + "-si-2025-03"
		}
	}
	if change.Event.ID == "" {
		t.Fatalf("the walk's first person %q is none of the rig's", q)
	}
	r.apply(t, []hub.Input{change}) // Q's qualifying change, during the walk
	time.Sleep(time.Second)         // published
	stop()                          // the hub stopped mid-walk

	r.start(t) // and started again
	r.expect(t, &schemas.EligibilityNotification{CitizenID: q, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
}
