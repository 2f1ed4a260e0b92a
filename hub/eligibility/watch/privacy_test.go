package watch_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

const bucket = "pophub_eligibility"

// bucketSubjects returns every subject the bucket's stream holds a message
// on: its keys, and the delete and purge markers an operator would see
// with nats stream subjects.
func bucketSubjects(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for subj := range info.State.Subjects {
		subjects = append(subjects, subj)
	}
	return subjects
}

// bucketKeys returns the bucket's keys as nats kv ls shows them.
func bucketKeys(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// assertNoID fails if any of texts (subjects, keys, header values)
// contains one of ids.
func assertNoID(t *testing.T, what string, texts []string, ids ...citizenid.ID) {
	t.Helper()
	for _, s := range texts {
		for _, id := range ids {
			if strings.Contains(s, string(id)) {
				t.Errorf("%s %q carries citizen ID %s", what, s, id)
			}
		}
	}
}

// TestNoCitizenIDInBucketOrHeaders: the bucket of last decisions and the
// headers of an announcement carry no citizen ID, across a restart that
// must still announce a person on their qualifying day.
func TestNoCitizenIDInBucketOrHeaders(t *testing.T) {
	r := newRig(t, time.Date(2025, 3, 1, 12, 0, 0, 0, china), "heilongjiang/daqing")
	id, in := daqing(t, "2023-03-03", "2023-01..2025-01") // qualifies on 2025-03-02
	r.apply(t, in)
	r.expect(t, nil, 1500*time.Millisecond)

	// The decision is saved before the batch is acknowledged; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for len(bucketKeys(t, r.js)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no decision saved in the bucket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	assertNoID(t, "bucket key", bucketKeys(t, r.js), id)
	assertNoID(t, "bucket subject", bucketSubjects(t, r.js), id)

	// A restarted watcher knows whom to decide on the day from the bucket.
	r.restart(t)
	tomorrow := time.Date(2025, 3, 2, 12, 0, 0, 0, china)
	r.now.Store(&tomorrow)
	m := r.expect(t, &schemas.EligibilityNotification{CitizenID: id, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
	var headers []string
	for name, vs := range m.Headers() {
		headers = append(headers, name)
		headers = append(headers, vs...)
	}
	if len(headers) == 0 {
		t.Fatal("the announcement has no headers; want Nats-Msg-Id")
	}
	assertNoID(t, "header", headers, id)
	assertNoID(t, "bucket key", bucketKeys(t, r.js), id)
	assertNoID(t, "bucket subject", bucketSubjects(t, r.js), id)
}

// TestUpgradeFromKeysWithIDs: a bucket an earlier release keyed by
// <policy>.<citizen ID> is taken over on start: a person already announced
// is not announced again for an unchanged decision, a person waiting for
// their qualifying day is still announced on it, and no key or subject
// with an ID is left.
func TestUpgradeFromKeysWithIDs(t *testing.T) {
	announced, announcedIn := daqingBorn(t, "1988-06-01", "2023-03-01", "2023-01..2025-01") // eligible since 2025-02-28
	waiting, waitingIn := daqing(t, "2023-03-03", "2023-01..2025-01")                       // qualifies on 2025-03-02
	old := func(js jetstream.JetStream) {
		ctx := context.Background()
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		for id, st := range map[citizenid.ID]string{
			announced: `{"eligible":true,"as_of":"2025-02-28"}`,
			waiting:   `{"eligible":false,"as_of":"2025-03-01","qualifies_on":"2025-03-02"}`,
		} {
			if _, err := kv.Create(ctx, "heilongjiang_daqing."+string(id), []byte(st)); err != nil {
				t.Fatal(err)
			}
		}
		// A policy no longer watched keeps its entries, without the ID.
		if _, err := kv.Create(ctx, "jilin_city."+string(announced), []byte(`{"eligible":true,"as_of":"2025-02-28"}`)); err != nil {
			t.Fatal(err)
		}
	}
	r := newRigWith(t, time.Date(2025, 3, 1, 12, 0, 0, 0, china), old, "heilongjiang/daqing")
	keys := bucketKeys(t, r.js)
	decisions := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return strings.HasPrefix(k, "_policy.") })
	if len(decisions) != 3 {
		t.Fatalf("bucket keys after the upgrade: %q; want the 3 decisions kept", keys)
	}
	assertNoID(t, "bucket key", keys, announced, waiting)
	assertNoID(t, "bucket subject", bucketSubjects(t, r.js), announced, waiting)

	// Both persons' facts arrive (or change): the one announced before is
	// still eligible, which is nothing new.
	r.apply(t, announcedIn)
	r.apply(t, waitingIn)
	r.expect(t, nil, 2*time.Second)

	tomorrow := time.Date(2025, 3, 2, 12, 0, 0, 0, china)
	r.now.Store(&tomorrow)
	r.expect(t, &schemas.EligibilityNotification{CitizenID: waiting, Policy: "heilongjiang/daqing", RegionCode: "230602"}, 10*time.Second)
	r.expect(t, nil, 1500*time.Millisecond)

	if eligible := eligibleInBucket(t, r); eligible != 3 {
		t.Fatalf("%d eligible decisions in the bucket, want 3 (both persons under daqing, the unwatched policy's kept)", eligible)
	}
	assertNoID(t, "bucket subject", bucketSubjects(t, r.js), announced, waiting)
}
