package synth

import (
	"context"
	"reflect"
	"testing"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

func collect(t *testing.T, cfg Config) ([]schemas.Event, Stats) {
	t.Helper()
	var out []schemas.Event
	st, err := GenerateStats(context.Background(), cfg, func(ev schemas.Event) error {
		out = append(out, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

func TestDeterministic(t *testing.T) {
	a, _ := collect(t, Config{Persons: 300, Seed: 5})
	b, _ := collect(t, Config{Persons: 300, Seed: 5})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different events")
	}
	c, _ := collect(t, Config{Persons: 300, Seed: 6})
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same events")
	}
	// Person i is the same person in a larger population.
	small, large := map[citizenid.ID][]string{}, map[citizenid.ID][]string{}
	for _, e := range a {
		small[e.Subject] = append(small[e.Subject], e.ID)
	}
	big, _ := collect(t, Config{Persons: 600, Seed: 5})
	for _, e := range big {
		if _, ok := small[e.Subject]; ok {
			large[e.Subject] = append(large[e.Subject], e.ID)
		}
	}
	for id, evs := range small {
		if len(large[id]) != len(evs) {
			t.Fatalf("person %v has %d events in the larger run, %d in the smaller", id, len(large[id]), len(evs))
		}
	}
}

// TestValidAndComplete: every event passes the hub's own decoder, every
// catalogue type occurs, IDs are unique per person index, marriages come
// in pairs.
func TestValidAndComplete(t *testing.T) {
	events, st := collect(t, Config{Persons: 20000, Seed: 1, DuplicateRate: 0.01})
	seen := map[schemas.EventKey]bool{}
	dups := 0
	married := map[citizenid.ID]citizenid.ID{}
	for _, ev := range events {
		raw, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(ev.Source), Key: []byte(ev.Subject), Value: raw}); err != nil {
			t.Fatalf("event %s does not decode: %v", ev.ID, err)
		}
		if seen[ev.Key()] {
			dups++
		}
		seen[ev.Key()] = true
		if d, ok := ev.Payload.(*schemas.MarriageRegisteredData); ok {
			married[ev.Subject] = d.SpouseID
		}
	}
	for _, typ := range schemas.Types() {
		if st.ByType[typ] == 0 {
			t.Errorf("no %s event in 20,000 persons", typ)
		}
	}
	if st.Persons != 20000 {
		t.Errorf("%d persons, want 20000", st.Persons)
	}
	if dups == 0 || dups > len(events)/50 {
		t.Errorf("%d repeated events of %d at a 1%% duplicate rate", dups, len(events))
	}
	for a, b := range married {
		if married[b] != a {
			t.Fatalf("marriage of %v to %v has no matching event for the spouse", a, b)
		}
	}
}

// TestLateArrivals: with a late rate, some events of a person arrive
// after a later event of that person.
func TestLateArrivals(t *testing.T) {
	for _, tc := range []struct {
		rate    float64
		wantAny bool
	}{{-1, false}, {0.1, true}} {
		events, _ := collect(t, Config{Persons: 500, Seed: 2, LateRate: tc.rate})
		last := map[citizenid.ID]schemas.Event{}
		late := 0
		for _, ev := range events {
			if p, ok := last[ev.Subject]; ok && ev.Time.Before(p.Time) {
				late++
			}
			if p, ok := last[ev.Subject]; !ok || ev.Time.After(p.Time) {
				last[ev.Subject] = ev
			}
		}
		if (late > 0) != tc.wantAny {
			t.Errorf("late rate %v: %d out-of-order arrivals", tc.rate, late)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	events, persons := 0, 0
	for b.Loop() {
		st, err := GenerateStats(context.Background(), Config{Persons: 10000, Seed: 1}, func(schemas.Event) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		events += st.Events
		persons += st.Persons
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(persons)/b.Elapsed().Seconds(), "persons/s")
}
