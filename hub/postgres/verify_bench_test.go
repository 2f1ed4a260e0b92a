package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// loadPopulation writes a population with the bulk Loader, in chunks
// that hold whole persons, as the Loader requires.
func loadPopulation(t testing.TB, s *Store, in []hub.Input) {
	t.Helper()
	byPerson := map[string][]hub.Input{}
	var order []string
	for _, e := range in {
		k := string(e.Event.Subject)
		if byPerson[k] == nil {
			order = append(order, k)
		}
		byPerson[k] = append(byPerson[k], e)
	}
	l := s.NewLoader()
	var chunk []hub.Input
	for i, k := range order {
		chunk = append(chunk, byPerson[k]...)
		if i%1000 == 999 || i == len(order)-1 {
			if err := l.Load(context.Background(), chunk); err != nil {
				t.Fatal(err)
			}
			chunk = nil
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkVerifyCounters recounts a population of 20,000 persons, whole
// (the default budget holds its counters) and in pieces of 20,000
// counters written to files and merged.
func BenchmarkVerifyCounters(b *testing.B) {
	s := openTestStore(b, testenv.Schema(b))
	loadPopulation(b, s, storetest.Population(b, 20000, 33))
	for _, budget := range []int{0, 20000} {
		b.Run(fmt.Sprintf("budget=%d", budget), func(b *testing.B) {
			s.verifyBudget = budget
			for b.Loop() {
				diffs, err := s.VerifyCounters(context.Background())
				if err != nil || len(diffs) != 0 {
					b.Fatalf("%d differences (%v)", len(diffs), err)
				}
			}
		})
	}
	b.Run("whole map, as before", func(b *testing.B) {
		for b.Loop() {
			if diffs, err := s.verifyWhole(context.Background()); err != nil || len(diffs) != 0 {
				b.Fatalf("%d differences (%v)", len(diffs), err)
			}
		}
	})
}
