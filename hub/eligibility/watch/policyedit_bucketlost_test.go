package watch_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestPolicyWalkBucketLostMidWalkSaysWhoIsNotAnnounced: the bucket of last
// decisions goes (a NATS volume lost) while the watcher decides the
// store's persons again under an edited policy. The decisions the walk
// compared against, and its claim, are gone, and the old text is not
// loaded: nothing tells any more who turns eligible through the edit. The
// watcher makes the bucket again and decides every person again under the
// loaded text without announcing, as for any bucket lost (announcing would
// repeat every person announced before), and records the loaded version,
// under which every decision now is. The log must say so at ERROR, and
// not promise a walk that never comes.
func TestPolicyWalkBucketLostMidWalkSaysWhoIsNotAnnounced(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	_, in := daqing(t, "2023-03-01", "2023-04..2024-09") // 18 months, stopped
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)

	r.stop()
	r.cat = daqing12(t)
	g := newGated(r.store)
	startWith(t, r, g)
	waitWalk(t, g)
	if err := r.js.DeleteKeyValue(context.Background(), "pophub_eligibility"); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(false)
	close(g.release)

	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(r.log.String(), "decided every person of the store again"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the bucket was not made again and filled; log:\n%s", r.log.String())
		}
	}
	log := r.log.String()
	if strings.Contains(log, "starts over") {
		t.Errorf("the log promises the walk starts over, but the edit is not walked again:\n%s", log)
	}
	if !strings.Contains(log, "level=ERROR msg=\"eligibility: the bucket of last decisions went while deciding the store's persons again under the edited policies") ||
		!strings.Contains(log, "persons who turned eligible through the edit, and whom this walk had not reached, are not announced") {
		t.Errorf("nothing said at ERROR of the persons the edit made eligible, who are not announced:\n%s", log)
	}
	// The log line comes before the version entry is written: wait for
	// the entry, which may not be there yet.
	want := digestOf(t, r.cat, "heilongjiang/daqing")
	kv, err := r.js.KeyValue(context.Background(), "pophub_eligibility")
	if err != nil {
		t.Fatal(err)
	}
	key := versionEntryKey("heilongjiang/daqing")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		e, err := kv.Get(context.Background(), key)
		if err == nil {
			if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Digest == want && v.Walking == "" {
				break
			}
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("version entry %v (%v) in the bucket made again, want digest %s, under which every decision was made again", e, err, want)
		}
	}
	r.expect(t, nil, time.Second)
}
