package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
)

// TestStoreIDStableAndPerSchema: the id that ties a consumer group to one
// store (ingest.Config.StoreID) is the same every time a schema is
// opened, by instances opening it at once too and by the tools' read-only
// OpenExisting, and differs between two schemas: a hub pointed at another
// schema (or database) by mistake is told apart.
func TestStoreIDStableAndPerSchema(t *testing.T) {
	ctx := context.Background()
	a, b := testenv.Schema(t), testenv.Schema(t)

	// Instances starting together on a new schema settle on one id.
	ids := make([]string, 3)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: a})
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			ids[i] = s.StoreID()
			s.Close()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	first := ids[0]
	if meta, _, _ := strings.Cut(first, "/"); len(meta) != 32 {
		t.Fatalf("store id %q, want 32 hex digits before the slash", first)
	}
	for _, id := range ids[1:] {
		if id != first {
			t.Fatalf("instances opening one new schema together got store ids %q: want one", ids)
		}
	}

	existing, err := OpenExisting(ctx, Config{URL: testenv.PostgresURL(), Schema: a})
	if err != nil {
		t.Fatal(err)
	}
	defer existing.Close()
	tests := []struct {
		name   string
		store  *Store
		sameAs bool // as schema a's first id
	}{
		{"schema a reopened", openTestStore(t, a), true},
		{"schema a opened by a tool", existing, true},
		{"schema b", openTestStore(t, b), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.store.StoreID()
			if got == "" {
				t.Fatal("no store id")
			}
			if (got == first) != tt.sameAs {
				t.Errorf("store id %q, schema a's is %q; want same: %v", got, first, tt.sameAs)
			}
		})
	}
}
