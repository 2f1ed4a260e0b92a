package memdb

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
)

// TestDataKeyVersionsChecked: a directory records a fingerprint of every
// data-key version it was opened with and refuses a keyring holding one
// of them under another key (two copies of the key file that each ran
// `keys add`), or lacking the newest recorded one. Before, only the HMAC
// key was compared.
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
	dir := t.TempDir()
	s := openSealed(t, Config{Dir: dir, Keys: storetest.Keyring(t, base)})
	storetest.ApplyAll(t, s, m.In[:1], 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSealed(t, Config{Dir: dir, Keys: storetest.Keyring(t, a)})
	storetest.ApplyAll(t, s, m.In[1:2], 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		keys sealing.Material
	}{
		{"version 2 under another key", b},
		{"lacking version 2", base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, Config{Dir: dir, Keys: storetest.Keyring(t, tc.keys)})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), "data key version 2") {
				t.Errorf("error %q does not name data key version 2", err)
			}
		})
	}
	if err := openSealed(t, Config{Dir: dir, Keys: storetest.Keyring(t, a)}).Close(); err != nil {
		t.Fatal(err)
	}
}
