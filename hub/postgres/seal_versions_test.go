package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestDataKeyVersionsChecked: a schema records a fingerprint of every
// data-key version it was opened with and refuses a keyring holding one
// of them under another key (two copies of the key file that each ran
// `keys add`), or lacking the newest recorded one, before it writes
// anything. Before, only the HMAC key was compared, and the copies' rows
// could not be opened by each other.
func TestDataKeyVersionsChecked(t *testing.T) {
	ctx := context.Background()
	m := storetest.MarkedPerson(t)
	base := storetest.Keys(t)
	a, b := sealing.Material{HMAC: base.HMAC, Data: slices.Clone(base.Data)}, sealing.Material{HMAC: base.HMAC, Data: slices.Clone(base.Data)}
	if err := a.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	if err := b.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	schema := testenv.Schema(t)
	storetest.ApplyAll(t, openSealedStore(t, schema, storetest.Keyring(t, base)), m.In[:1], 10)
	storetest.ApplyAll(t, openSealedStore(t, schema, storetest.Keyring(t, a)), m.In[1:2], 10)

	tests := []struct {
		name     string
		keys     sealing.Material
		existing bool
	}{
		{"version 2 under another key", b, false},
		{"lacking version 2", base, false},
		{"version 2 under another key, existing", b, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := Open
			if tc.existing {
				open = OpenExisting
			}
			s, err := open(ctx, Config{URL: testenv.PostgresURL(), Schema: schema, Keys: storetest.Keyring(t, tc.keys)})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), "data key version 2") {
				t.Errorf("error %q does not name data key version 2", err)
			}
		})
	}
	openSealedStore(t, schema, storetest.Keyring(t, a)).Close()
}

// TestResealRefusesUnknownVersions: `keys rotate` with a keyring lacking
// a version some rows are sealed with fails instead of reporting success
// with those rows left unreadable. The schema here predates the recorded
// fingerprints, so Open cannot tell.
func TestResealRefusesUnknownVersions(t *testing.T) {
	ctx := context.Background()
	in := storetest.Population(t, 20, 7)
	base := storetest.Keys(t)
	newer := sealing.Material{HMAC: base.HMAC, Data: slices.Clone(base.Data)}
	if err := newer.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	schema := testenv.Schema(t)
	s := openSealedStore(t, schema, storetest.Keyring(t, newer))
	storetest.ApplyAll(t, s, in, 10)
	if _, err := s.pool.Exec(ctx, `DELETE FROM hub_meta WHERE name LIKE 'sealed_v%'`); err != nil {
		t.Fatal(err)
	}
	old := openSealedStore(t, schema, storetest.Keyring(t, base))
	n, err := old.Reseal(ctx, 5, nil)
	if err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("Reseal with a keyring lacking version 2: %d values, %v; want an error naming version 2", n, err)
	}
}
