package watch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// editedPolicies is the built-in policies with one text of one file
// replaced, as an operator edits a policy under --policies.
func editedPolicies(t *testing.T, file, old, new string) *eligibility.Catalog {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(policies.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.FS(), name)
		if err != nil {
			return err
		}
		if name == file {
			if !strings.Contains(string(b), old) {
				t.Fatalf("premise: %s holds no %q", file, old)
			}
			b = []byte(strings.Replace(string(b), old, new, 1))
		}
		m[name] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := eligibility.Load(m)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// daqing12 is the built-in policies with Daqing's insurance requirement
// lowered from 24 to 12 months.
func daqing12(t *testing.T) *eligibility.Catalog {
	t.Helper()
	return editedPolicies(t, "heilongjiang/daqing.yaml", "min_months: 24, local: false", "min_months: 12, local: false")
}

// versionEntry is the bucket entry naming the version of the policy the
// saved decisions were made under: _policy.<hex SHA-256 of the id>.
// versionEntryKey is the bucket key of a policy's version entry.
func versionEntryKey(policyID string) string {
	h := sha256.Sum256([]byte(policyID))
	return "_policy." + hex.EncodeToString(h[:])
}

func versionEntry(t *testing.T, js jetstream.JetStream, policyID string) (key string, v struct {
	Digest, Walking string
	Released        bool
}) {
	t.Helper()
	key = versionEntryKey(policyID)
	kv, err := js.KeyValue(context.Background(), "pophub_eligibility")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("the version entry %s of %s: %v", key, policyID, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		t.Fatal(err)
	}
	return key, v
}

func digestOf(t *testing.T, cat *eligibility.Catalog, policyID string) string {
	t.Helper()
	p, ok := cat.Policy(policyID)
	if !ok {
		t.Fatalf("no policy %s", policyID)
	}
	return p.Digest()
}

// TestPolicyEditedDecidesTheSavedPersonsAgain: the operator lowers
// Daqing's insurance requirement from 24 to 12 months (a policy file under
// --policies edited, the hub restarted). A person with 18 months, refused
// under the old text with no qualifying day (their contributions stopped),
// is eligible under the new one: the watcher, finding its decisions were
// made under another version of the policy, decides the store's persons
// again at its start and announces them, naming the version that decided.
// A restart under the same text, or under a text edited only in its
// comments, decides nobody again.
func TestPolicyEditedDecidesTheSavedPersonsAgain(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqing(t, "2023-03-01", "2023-04..2024-09") // 18 months, stopped
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)
	if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Digest != digestOf(t, r.cat, "heilongjiang/daqing") || v.Walking != "" {
		t.Fatalf("version entry %+v, want the built-in policy's %s", v, digestOf(t, r.cat, "heilongjiang/daqing"))
	}

	r.cat = daqing12(t)
	r.restart(t)
	m := r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
	var n schemas.EligibilityNotification
	if err := json.Unmarshal(m.Data(), &n); err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, r.cat, "heilongjiang/daqing")
	if n.PolicyDigest != want || n.Trigger != "policy_changed" {
		t.Errorf("policy_digest %q, trigger %q; want %q, policy_changed", n.PolicyDigest, n.Trigger, want)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Digest == want && v.Walking == "" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("version entry %+v after the walk, want %s recorded", v, want)
		}
	}

	r.cat = editedPolicies(t, "heilongjiang/daqing.yaml", "min_months: 24, local: false", "min_months:   12,   local: false")
	r.restart(t)
	r.expect(t, nil, 2*time.Second)
	if n := strings.Count(r.log.String(), "the policy changed since its decisions were saved"); n != 1 {
		t.Errorf("the store walked %d times, want once (an edit of the layout changes no version):\n%s", n, r.log.String())
	}
}

// TestPolicyEditedWalkStoppedHalfwayIsMadeAgain: a hub stopped while it
// decides the store's persons again under an edited policy (a rollout)
// has not recorded the new version: /readyz said it was busy meanwhile,
// it gives the walk back, and its next start walks again at once and
// announces.
func TestPolicyEditedWalkStoppedHalfwayIsMadeAgain(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqing(t, "2023-03-01", "2023-04..2024-09") // 18 months, stopped
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)
	old := digestOf(t, r.cat, "heilongjiang/daqing")

	r.stop()
	r.cat = daqing12(t)
	g := newGated(r.store)
	w, stop := startWith(t, r, g)
	waitWalk(t, g)
	if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Walking != digestOf(t, r.cat, "heilongjiang/daqing") {
		t.Errorf("version entry %+v while walking, want walking under the edited policy", v)
	}
	time.Sleep(500 * time.Millisecond)
	if w.Problem() == nil {
		t.Errorf("Problem() nil while the watcher walks the store and decides no notification")
	}
	stop()
	if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Digest != old || !v.Released {
		t.Errorf("version entry %+v after a stop mid-walk, want %s still, and the walk given back", v, old)
	}
	r.expect(t, nil, 500*time.Millisecond)

	r.start(t)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
}

// TestPolicyEditedInstancesStartingTogetherAnnounceOnce: several hub
// instances restarted at once with the edited policy: one decides the
// store's persons again, and the persons who turn eligible are announced
// once.
func TestPolicyEditedInstancesStartingTogetherAnnounceOnce(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	var ids []string
	for _, born := range []string{"1991-02-02", "1992-03-03", "1993-04-04", "1994-05-05"} {
		id, in := daqingBorn(t, born, "2023-03-01", "2023-04..2024-09") // 18 months, stopped
		r.apply(t, in)
		ids = append(ids, string(id))
	}
	r.expect(t, nil, 1500*time.Millisecond)

	r.stop()
	r.cat = daqing12(t)
	for range 3 { // each opens the bucket while the others do
		startWith(t, r, r.store)
	}
	got := map[string]int{}
	for deadline := time.After(15 * time.Second); len(got) < len(ids); {
		select {
		case m := <-r.got:
			var n schemas.EligibilityNotification
			if err := json.Unmarshal(m.Data(), &n); err != nil {
				t.Fatal(err)
			}
			got[string(n.CitizenID)]++
		case <-deadline:
			t.Fatalf("announced %v of %v; log:\n%s", got, ids, r.log.String())
		}
	}
	r.expect(t, nil, 3*time.Second)
	if n := strings.Count(r.log.String(), "the policy changed since its decisions were saved"); n != 1 {
		t.Errorf("%d instances walked the store, want 1:\n%s", n, r.log.String())
	}
}

// TestUpgradeRecordsThePolicyVersionWithoutWalking: decisions saved by a
// release that recorded no policy version are taken as made under the
// version loaded, without a walk of the store (minutes in a city, out of
// /readyz), and the log says so and how to ask for the walk; put {} under
// the version entry, the next start walks.
func TestUpgradeRecordsThePolicyVersionWithoutWalking(t *testing.T) {
	r := newRig(t, time.Date(2025, 4, 10, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqing(t, "2023-03-01", "2023-04..2024-09") // 18 months, stopped
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)
	key, _ := versionEntry(t, r.js, "heilongjiang/daqing")

	// As an earlier release leaves the bucket: decisions, no version.
	r.stop()
	kv, err := r.js.KeyValue(context.Background(), "pophub_eligibility")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	r.cat = daqing12(t)
	r.start(t)
	r.expect(t, nil, 2*time.Second)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(r.log.String(), "do not name the version of the policy they were made under"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing said of the version recorded without a walk:\n%s", r.log.String())
		}
	}
	if _, v := versionEntry(t, r.js, "heilongjiang/daqing"); v.Digest != digestOf(t, r.cat, "heilongjiang/daqing") {
		t.Errorf("version entry %+v, want the loaded policy's", v)
	}

	r.stop()
	if _, err := kv.Put(context.Background(), key, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
}
