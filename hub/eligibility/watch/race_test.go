package watch

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/hub/embedded"
	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/ops/policies"
	"github.com/pophub/pophub/schemas"
)

// racingKV is the bucket as an instance sees it while another instance
// saves a decision for the same person between its read and its write.
type racingKV struct {
	jetstream.KeyValue
	gets  atomic.Int32
	other []byte // saved by the other instance after the first read
}

func (kv *racingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if key == rebuildKey { // not a decision
		return kv.KeyValue.Get(ctx, key)
	}
	e, err := kv.KeyValue.Get(ctx, key)
	if kv.gets.Add(1) == 1 {
		if _, perr := kv.KeyValue.Put(ctx, key, kv.other); perr != nil {
			return nil, perr
		}
	}
	return e, err
}

// TestDecisionSavedOverItsRevision: a decision made against a last
// decision that another instance has since replaced is made again rather
// than written over the newer one.
func TestDecisionSavedOverItsRevision(t *testing.T) {
	ctx := context.Background()
	srv := testenv.NATS(t, embedded.NATSConfig{})
	js := testenv.JetStream(t, srv.ClientURL())
	store, cat := storeAndCatalog(t)
	c := eligibility.Case{Person: eligibility.CasePerson{BirthDate: "1990-01-01", Hukou: "231221100200"}}
	ids, in, err := c.Inputs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(ctx, in); err != nil {
		t.Fatal(err)
	}
	// The watcher ran before the person came: Open decides nobody.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "pophub_eligibility"}); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{JS: js, Store: store, Catalog: cat, Policies: []string{"heilongjiang/daqing"},
		Now: func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// The other instance found the person eligible (a decision this one,
	// on these facts, would not make: it must not be lost unseen).
	other, _ := json.Marshal(state{Eligible: true, AsOf: "2025-03-01"})
	kv := &racingKV{KeyValue: w.kv, other: other}
	w.kv = kv
	p, _ := cat.Policy("heilongjiang/daqing")
	if err := w.decide(ctx, p, ids[0], "test", false); err != nil {
		t.Fatal(err)
	}
	if n := kv.gets.Load(); n != 2 {
		t.Fatalf("the last decision was read %d times; want the decision made again after the other instance's save", n)
	}
	e, err := kv.KeyValue.Get(ctx, w.key(schemas.PolicyToken(p.ID), ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	var got state
	if err := json.Unmarshal(e.Value(), &got); err != nil || got.Eligible || e.Revision() < 2 {
		t.Fatalf("saved %s at revision %d; want this instance's decision saved over the other's", e.Value(), e.Revision())
	}
}

// storeAndCatalog opens an empty memdb store, closed when the test ends,
// and loads the shipped policies.
func storeAndCatalog(t *testing.T) (*memdb.Store, *eligibility.Catalog) {
	t.Helper()
	store, err := memdb.Open(context.Background(), memdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cat, err := eligibility.Load(policies.FS())
	if err != nil {
		t.Fatal(err)
	}
	return store, cat
}
