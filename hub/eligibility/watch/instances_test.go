package watch_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/eligibility/watch"
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
	w, err := watch.New(watch.Config{JS: r.js, Store: rd, Catalog: r.cat, Policies: watched,
		Now: func() time.Time { return *r.now.Load() }})
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
