package sealing

import (
	"errors"
	"slices"
	"testing"
)

// cloneMaterial copies m so that adding a key to the copy leaves m alone.
func cloneMaterial(m Material) Material {
	return Material{HMAC: slices.Clone(m.HMAC), Data: slices.Clone(m.Data)}
}

// TestCheckVersions: a store's recorded data-key fingerprints refuse a
// keyring that holds a recorded version under another key (two copies of
// a key file that each ran `keys add`) or lacks the newest recorded one.
func TestCheckVersions(t *testing.T) {
	base, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	a, b := cloneMaterial(base), cloneMaterial(base)
	if err := a.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	if err := b.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	ring := func(m Material) *Keyring {
		k, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ka, kb, kbase := ring(a), ring(b), ring(base)
	if ka.Check() != kb.Check() {
		t.Fatal("the copies' HMAC checks differ")
	}
	recorded := ka.VersionChecks()
	tests := []struct {
		name string
		k    *Keyring
		ok   bool
	}{
		{"the same keys", ka, true},
		{"version 2 under another key", kb, false},
		{"lacking the newest recorded version", kbase, false},
	}
	for _, tc := range tests {
		err := CheckVersions(recorded, tc.k)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrVersionMismatch)) {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if err := CheckVersions(kbase.VersionChecks(), ka); err != nil {
		t.Errorf("a keyring with a newer version than recorded: %v", err)
	}
	if c, _ := ka.VersionCheck(1); c != kbase.VersionChecks()[1] || c == "" {
		t.Error("the fingerprint of version 1 depends on the other versions")
	}
}
