package watch_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// TestPolicyWalkGivenBackOnStopIsTakenOverByAPeer: two instances run the
// edited policy; the first claims the walk of the store, the second
// defers to it and goes on deciding the changes. The first is then stopped
// mid-walk (a scale-down, a node drained): it gives its claim back, marked
// released. The running peer takes the walk over at its next look at the
// bucket, seconds later, not after two minutes and not at some instance's
// next start: the person who turns eligible under the new text is
// announced, and the new version recorded.
func TestPolicyWalkGivenBackOnStopIsTakenOverByAPeer(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqing(t, "2023-03-01", "2023-04..2024-09") // 18 months, stopped
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)
	old := digestOf(t, r.cat, "heilongjiang/daqing")

	r.stop()
	r.cat = daqing12(t)
	edited := digestOf(t, r.cat, "heilongjiang/daqing")
	g := newGated(r.store)
	_, stopWalker := startWith(t, r, g)
	waitWalk(t, g)
	startWith(t, r, r.store) // the peer: finds the walk claimed, defers
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(r.log.String(), "another instance is deciding the store's persons again"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("premise: the peer did not defer to the walker; log:\n%s", r.log.String())
		}
	}
	stopWalker()
	if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Digest != old || v.Walking != edited || !v.Released {
		t.Fatalf("version entry %+v after the walker stopped, want %s still recorded and the walk under %s released", v, old, edited)
	}

	select {
	case m := <-r.got:
		var n schemas.EligibilityNotification
		if err := json.Unmarshal(m.Data(), &n); err != nil {
			t.Fatal(err)
		}
		if n.CitizenID != id || n.Trigger != "policy_changed" || n.PolicyDigest != edited {
			t.Errorf("announced %+v, want %s by policy_changed under %s", n, id, edited)
		}
	case <-time.After(15 * time.Second):
		_, v := versionEntry(t, r.js, "heilongjiang/daqing")
		t.Fatalf("%s, eligible under the edited policy, not announced 15 s after the walker stopped: the running peer did not take the walk over (version entry %+v); log:\n%s",
			id, v, r.log.String())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Digest == edited && v.Walking == "" && !v.Released {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("version entry %+v after the peer's walk, want %s recorded", v, edited)
		}
	}
	r.expect(t, nil, time.Second)
}
