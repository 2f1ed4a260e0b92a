package storetest

import (
	"testing"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

func TestValidIDDistinctAndValid(t *testing.T) {
	seen := map[citizenid.ID]int{}
	for _, n := range []int{0, 1, 2, 6, 7, 19999, 20000, 139_999, 140_000, 1_000_003, 9_999_999, 99_999_999, 139_999_999} {
		id := ValidID(n)
		if _, err := citizenid.Parse(string(id)); err != nil {
			t.Fatalf("ValidID(%d) = %v: %v", n, id, err)
		}
		if m, dup := seen[id]; dup {
			t.Fatalf("ValidID(%d) = ValidID(%d)", n, m)
		}
		seen[id] = n
	}
	for n := range 50_000 {
		id := ValidID(n)
		if m, dup := seen[id]; dup && m != n {
			t.Fatalf("ValidID(%d) = ValidID(%d)", n, m)
		}
		seen[id] = n
	}
}

func TestPopulationDeterministicAndComplete(t *testing.T) {
	a := population(t, 10, 5)
	b := population(t, 10, 5)
	c := Population(t, 10, 6)
	if len(a) != len(b) {
		t.Fatalf("same seed: %d and %d events", len(a), len(b))
	}
	for i := range a {
		if string(a[i].Raw) != string(b[i].Raw) {
			t.Fatalf("same seed, event %d differs", i)
		}
	}
	keys := map[schemas.EventKey]bool{}
	types := map[schemas.Type]bool{}
	persons := map[citizenid.ID]bool{}
	for i, e := range a {
		if keys[e.Event.Key()] {
			t.Fatalf("event id %s twice", e.Event.ID)
		}
		keys[e.Event.Key()] = true
		types[e.Event.Type] = true
		persons[e.Event.Subject] = true
		if e.Event.Payload == nil {
			t.Fatalf("event %d has no payload", i)
		}
		if i > 0 && e.Event.Time.Before(a[i-1].Event.Time) {
			t.Fatalf("event %d out of time order", i)
		}
	}
	if len(types) != len(schemas.Types()) {
		t.Errorf("%d types, want %d", len(types), len(schemas.Types()))
	}
	if len(persons) != 10 {
		t.Errorf("%d persons, want 10", len(persons))
	}
	for _, e := range c {
		if keys[e.Event.Key()] || persons[e.Event.Subject] {
			t.Fatalf("another seed repeats event %s or its person", e.Event.ID)
		}
	}
	for _, e := range Population(t, 3, 5) {
		if e.Raw != nil {
			t.Fatal("Population sets Raw")
		}
	}
	if n := len(Population(t, 1, 7)); n < 23 {
		t.Errorf("one person has %d events, want at least one of each type", n)
	}
}
