package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExportSigned: an export verifies under the signing key and fails
// when the archive, the manifest or the signature is altered, or under
// another key.
func TestExportSigned(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			fill(t, s, k, base, 100, 30)
			ctx := context.Background()
			keyPath := filepath.Join(t.TempDir(), "signing.pem")
			pub, err := GenerateSigningKey(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			priv, err := LoadSigningKey(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if pub2, err := LoadPublicKey(keyPath + ".pub"); err != nil || !pub2.Equal(pub) {
				t.Fatalf("public key: %v", err)
			}
			var archive bytes.Buffer
			m, err := Export(ctx, s, base.Add(10*time.Second), base.Add(50*time.Second), &archive, k)
			if err != nil {
				t.Fatal(err)
			}
			if m.FirstSeq != 11 || m.LastSeq != 50 || m.Count != 40 {
				t.Errorf("manifest %+v", m)
			}
			manifest, sig, err := m.Sign(priv)
			if err != nil {
				t.Fatal(err)
			}
			if _, rep, err := VerifyExport(manifest, sig, pub, bytes.NewReader(archive.Bytes())); err != nil || rep.Entries != 40 {
				t.Fatalf("VerifyExport: %+v, %v", rep, err)
			}
			flip := func(b []byte, i int) []byte {
				c := bytes.Clone(b)
				c[i] ^= 0x01
				return c
			}
			otherPub, _, _ := ed25519.GenerateKey(nil)
			tests := []struct {
				name               string
				manifest, sig, arc []byte
				pub                ed25519.PublicKey
			}{
				{"archive byte", manifest, sig, flip(archive.Bytes(), archive.Len()/2), pub},
				{"archive line removed", manifest, sig, archive.Bytes()[bytes.IndexByte(archive.Bytes(), '\n')+1:], pub},
				{"manifest byte", flip(manifest, len(manifest)/2), sig, archive.Bytes(), pub},
				{"signature byte", manifest, flip(sig, 3), archive.Bytes(), pub},
				{"other key", manifest, sig, archive.Bytes(), otherPub},
			}
			for _, tc := range tests {
				if _, _, err := VerifyExport(tc.manifest, tc.sig, tc.pub, bytes.NewReader(tc.arc)); err == nil {
					t.Errorf("%s: altered export verifies", tc.name)
				}
			}
			if _, err := Export(ctx, s, base.Add(time.Hour), base.Add(2*time.Hour), &archive, k); !errors.Is(err, ErrEmptyRange) {
				t.Errorf("empty range: %v", err)
			}
		})
	}
}

// TestKeyFile: a generated key file loads; short keys are refused.
func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.key")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(path)
	if err != nil || k.IsZero() {
		t.Fatalf("LoadKey: %v", err)
	}
	if err := GenerateKeyFile(path); err == nil {
		t.Error("GenerateKeyFile overwrote a key")
	}
	// A key others can read is refused, saying how to fix it.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key file of mode 0644 loaded: %v", err)
	}
	if _, err := ParseKey("00ff"); err == nil {
		t.Error("a 2-byte key was accepted")
	}
	if k.Subject(people[0]) == testKey(t).Subject(people[0]) || len(k.Subject(people[0])) != 64 || k.Subject("") != "" {
		t.Error("Subject does not depend on the key, or has the wrong form")
	}
}
