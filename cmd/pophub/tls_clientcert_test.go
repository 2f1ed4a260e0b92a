package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/tlsconf"
)

// TestTLSClientCertRefusesOverwrite: `pophub tls client-cert NAME --out X`
// replaced an existing X.pem and X-key.pem without a word (a re-run
// replaced a deployed client's key; --out <dir>/ca the CA's own), where
// keys init and audit keygen refuse. It refuses too now, and leaves both
// files as they were.
func TestTLSClientCertRefusesOverwrite(t *testing.T) {
	files, err := tlsconf.EnsureDev(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "stats-bureau")
	if got, err := execute(t, tlsCommand(), "client-cert", "stats-bureau", "--dir", files.Dir, "--out", out); err != nil {
		t.Fatalf("first issue: %v\n%s", err, got)
	}
	certBefore, _ := os.ReadFile(out + ".pem")
	keyBefore, _ := os.ReadFile(out + "-key.pem")
	caBefore, _ := os.ReadFile(files.CAKey)

	// Only a key file there, a client's whose certificate was moved: it
	// is named.
	keyOnly := filepath.Join(t.TempDir(), "half")
	if err := os.WriteFile(keyOnly+"-key.pem", []byte("deployed"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, out, want string
	}{
		{"a client's files", out, out + ".pem exists; client-cert never overwrites a certificate or key"},
		{"the CA's files", filepath.Join(files.Dir, "ca"), filepath.Join(files.Dir, "ca") + ".pem exists"},
		{"the key alone", keyOnly, keyOnly + "-key.pem exists"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := execute(t, tlsCommand(), "client-cert", "stats-bureau", "--dir", files.Dir, "--out", tc.out)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want one starting %q\n%s", err, tc.want, got)
			}
		})
	}
	for file, before := range map[string][]byte{out + ".pem": certBefore, out + "-key.pem": keyBefore, files.CAKey: caBefore} {
		if after, _ := os.ReadFile(file); string(after) != string(before) {
			t.Errorf("%s was overwritten", file)
		}
	}
	if _, err := os.Stat(keyOnly + ".pem"); !os.IsNotExist(err) {
		t.Errorf("the refused issue wrote %s.pem", keyOnly)
	}
}
