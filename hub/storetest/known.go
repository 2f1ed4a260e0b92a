package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/schemas"
)

// testKnownEvents applies a population with repeated events and asks for
// every applied key, keys never applied, and an applied id under another
// source: each answer is in the order asked, and a canceled context fails.
func testKnownEvents(t *testing.T, s hub.Store) {
	ctx := context.Background()
	got, err := s.KnownEvents(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("KnownEvents(nil) = %v, %v; want empty", got, err)
	}
	in := population(t, 30, 41)
	applied, later := in[:len(in)/2], in[len(in)/2:]
	ApplyAll(t, s, append(slices.Clone(applied), applied[:5]...), 50)

	var keys []schemas.EventKey
	var want []bool
	for i, e := range in {
		keys = append(keys, e.Event.Key())
		want = append(want, i < len(applied))
	}
	other := applied[0].Event.Key()
	other.Source = schemas.Marriage
	if applied[0].Event.Source == schemas.Marriage {
		other.Source = schemas.Health
	}
	keys = append(keys, other, schemas.EventKey{Source: schemas.Housing, ID: "never-sent"}, applied[3].Event.Key())
	want = append(want, false, false, true)
	// Reverse the order, so that an answer in storage order would show.
	slices.Reverse(keys)
	slices.Reverse(want)
	got, err = s.KnownEvents(ctx, keys)
	if err != nil {
		t.Fatalf("KnownEvents: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("KnownEvents answered\n%v\nwant\n%v", got, want)
	}

	ApplyAll(t, s, later, 50)
	var laterKeys []schemas.EventKey
	for _, e := range later {
		laterKeys = append(laterKeys, e.Event.Key())
	}
	got, err = s.KnownEvents(ctx, laterKeys)
	if err != nil {
		t.Fatalf("KnownEvents after the rest: %v", err)
	}
	for i, k := range got {
		if !k {
			t.Errorf("key %d applied in the second run reads unknown", i)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.KnownEvents(cctx, keys); err == nil {
		t.Error("KnownEvents with a canceled context succeeded")
	}
}

// testKnownEventsLimit asks for exactly MaxKnownEvents keys, then one more.
func testKnownEventsLimit(t *testing.T, s hub.Store) {
	in := population(t, 3, 42)
	ApplyAll(t, s, in, 100)
	keys := make([]schemas.EventKey, hub.MaxKnownEvents)
	for i := range keys {
		keys[i] = schemas.EventKey{Source: schemas.Tax, ID: fmt.Sprintf("absent-%d", i)}
	}
	keys[hub.MaxKnownEvents-1] = in[0].Event.Key()
	got, err := s.KnownEvents(context.Background(), keys)
	if err != nil {
		t.Fatalf("KnownEvents of %d keys: %v", len(keys), err)
	}
	if len(got) != len(keys) || !got[len(got)-1] || slices.Contains(got[:len(got)-1], true) {
		t.Fatalf("KnownEvents of %d keys answered %d, last %v", len(keys), len(got), got[len(got)-1])
	}
	if _, err := s.KnownEvents(context.Background(), append(keys, keys[0])); !errors.Is(err, hub.ErrInvalid) {
		t.Fatalf("KnownEvents of %d keys: %v, want ErrInvalid", len(keys)+1, err)
	}
}
