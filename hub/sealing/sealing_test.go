package sealing

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKeyring(t *testing.T) (*Keyring, Material) {
	t.Helper()
	m, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	k, err := New(m)
	if err != nil {
		t.Fatal(err)
	}
	return k, m
}

func TestSealOpen(t *testing.T) {
	k, _ := newKeyring(t)
	other, _ := newKeyring(t)
	plain := []byte(`{"id":"110101199003074514","name":"张三"}`)
	ad := []byte("person-a")
	blob := k.Seal(plain, ad)
	if bytes.Contains(blob, []byte("110101199003074514")) {
		t.Fatal("sealed blob holds the plaintext")
	}
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name    string
		k       *Keyring
		blob    []byte
		ad      []byte
		wantErr error
	}{
		{"round trip", k, blob, ad, nil},
		{"tampered ciphertext", k, flip(len(blob) - 20), ad, ErrTampered},
		{"tampered tag", k, flip(len(blob) - 1), ad, ErrTampered},
		{"tampered nonce", k, flip(headerLen), ad, ErrTampered},
		{"other associated data", k, blob, []byte("person-b"), ErrTampered},
		{"wrong key", other, blob, ad, ErrTampered},
		{"unknown version", k, flip(4), ad, ErrUnknownVersion},
		{"not sealed", k, plain, ad, ErrNotSealed},
		{"truncated", k, blob[:minBlobLen-1], ad, ErrNotSealed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.k.Open(tc.blob, tc.ad)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
			}
			if err == nil && !bytes.Equal(got, plain) {
				t.Fatalf("Open = %q, want %q", got, plain)
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	k, _ := newKeyring(t)
	a, b := k.Seal([]byte("x"), nil), k.Seal([]byte("x"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one plaintext are equal")
	}
}

func TestRotation(t *testing.T) {
	k1, m := newKeyring(t)
	old := k1.Seal([]byte("old"), nil)
	if err := m.AddDataKey(); err != nil {
		t.Fatal(err)
	}
	k2, err := New(m)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Newest() != 2 {
		t.Fatalf("newest = %d, want 2", k2.Newest())
	}
	if got, err := k2.Open(old, nil); err != nil || string(got) != "old" {
		t.Fatalf("opening an old blob = %q, %v", got, err)
	}
	blob := k2.Seal([]byte("new"), nil)
	if v, _ := Version(blob); v != 2 {
		t.Fatalf("new blob version = %d, want 2", v)
	}
	if _, err := k1.Open(blob, nil); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("old keyring opening a new blob: %v, want ErrUnknownVersion", err)
	}
	if k1.PersonKey("110101199003074514") != k2.PersonKey("110101199003074514") {
		t.Fatal("person keys changed with a data key rotation")
	}
}

func TestPersonKey(t *testing.T) {
	k, _ := newKeyring(t)
	other, _ := newKeyring(t)
	id := "110101199003074514"
	if k.PersonKey(id) != k.PersonKey(id) {
		t.Fatal("person key not deterministic")
	}
	if k.PersonKey(id) == other.PersonKey(id) || k.PersonKey(id) == k.PersonKey("110101199003074522") {
		t.Fatal("person keys collide")
	}
	if len(k.PersonKey(id)) != 64 {
		t.Fatalf("person key length = %d, want 64", len(k.PersonKey(id)))
	}
	if k.Check() == other.Check() {
		t.Fatal("checks of two keyrings are equal")
	}
}

func TestNewRejects(t *testing.T) {
	_, good := newKeyring(t)
	tests := []struct {
		name string
		m    Material
	}{
		{"short HMAC key", Material{HMAC: good.HMAC[:16], Data: good.Data}},
		{"no data key", Material{HMAC: good.HMAC}},
		{"version 0", Material{HMAC: good.HMAC, Data: []DataKey{{Version: 0, Key: good.Data[0].Key}}}},
		{"short data key", Material{HMAC: good.HMAC, Data: []DataKey{{Version: 1, Key: good.Data[0].Key[:8]}}}},
		{"duplicate version", Material{HMAC: good.HMAC, Data: []DataKey{good.Data[0], good.Data[0]}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.m); err == nil {
				t.Fatal("New accepted bad material")
			}
		})
	}
}

func TestSources(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys")
	if err := CreateFile(path); err != nil {
		t.Fatal(err)
	}
	if err := CreateFile(path); err == nil {
		t.Fatal("CreateFile overwrote a key file")
	}
	k1, err := Load(ctx, File(path))
	if err != nil {
		t.Fatal(err)
	}
	v, err := AddToFile(ctx, path)
	if err != nil || v != 2 {
		t.Fatalf("AddToFile = %d, %v; want 2", v, err)
	}
	k2, err := Load(ctx, File(path))
	if err != nil {
		t.Fatal(err)
	}
	if k2.Newest() != 2 || k2.PersonKey("x") != k1.PersonKey("x") {
		t.Fatalf("after adding a key: newest %d, person keys equal %v", k2.Newest(), k2.PersonKey("x") == k1.PersonKey("x"))
	}
	contents, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("POPHUB_TEST_KEYS", string(contents))
	k3, err := Load(ctx, Env("POPHUB_TEST_KEYS"))
	if err != nil || k3.Check() != k1.Check() {
		t.Fatalf("loading from the environment: %v", err)
	}
	if _, err := Load(ctx, Env("POPHUB_TEST_KEYS_UNSET")); err == nil {
		t.Fatal("loaded keys from an unset variable")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, File(path)); err == nil {
		t.Fatal("loaded a key file others can read")
	}
}

// TestIsPersonKey: a walk's cursor is judged by the shape of the keys its
// store makes, clear or sealed.
func TestIsPersonKey(t *testing.T) {
	k, _ := newKeyring(t)
	sealedKey := k.PersonKey("230102199001011230")
	for _, tc := range []struct {
		key    string
		sealed bool
		want   bool
	}{
		{"230102199001011230", false, true},
		{"11010519491231002X", false, true},
		{"11010519491231002x", false, false},
		{"23010219900101123", false, false},
		{sealedKey, false, false},
		{sealedKey, true, true},
		{"230102199001011230", true, false},
		{strings.ToUpper(sealedKey), true, false},
		{"", false, false},
		{"", true, false},
	} {
		if got := IsPersonKey(tc.key, tc.sealed); got != tc.want {
			t.Errorf("IsPersonKey(%q, sealed %v) = %v, want %v", tc.key, tc.sealed, got, tc.want)
		}
	}
}
