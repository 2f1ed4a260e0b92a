package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/postgres"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// openSealedPostgres opens the hub's PostgreSQL store in schema (of the
// database testenv names) sealed with the keys in keyFile, as the hub run
// with --keys does, creating the store if it is not there; the store is
// closed when t ends.
func openSealedPostgres(t *testing.T, keyFile, schema string) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	k, err := sealing.Load(ctx, sealing.File(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, postgres.Config{URL: testenv.PostgresURL(), Schema: schema, Keys: k})
	if err != nil {
		t.Fatalf("the hub's open of schema %s with the keys in %s: %v", schema, keyFile, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestKeysRotate goes through a rotation as an operator would: keys init,
// a hub writing with them, keys add, the hub restarted, keys rotate.
func TestKeysRotate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	if _, err := execute(t, keysCommand(), "init", file); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if _, err := execute(t, keysCommand(), "init", file); err == nil {
		t.Fatal("keys init overwrote a key file")
	}
	schema := testenv.Schema(t)
	m := storetest.MarkedPerson(t)
	storetest.ApplyAll(t, openSealedPostgres(t, file, schema), m.In, 50)

	out, err := execute(t, keysCommand(), "add", file)
	if err != nil || !strings.Contains(out, "version 2") {
		t.Fatalf("keys add: %q, %v", out, err)
	}
	s := openSealedPostgres(t, file, schema)
	out, err = execute(t, keysCommand(), "rotate", "--postgres", testenv.PostgresURL(), "--schema", schema, "--keys", file, "--batch", "10")
	if err != nil || !strings.Contains(out, "with data key version 2") || strings.Contains(out, "re-sealed 0 values") {
		t.Fatalf("keys rotate: %q, %v", out, err)
	}
	storetest.CompareRecords(t, s, storetest.Expected(m.In))
	out, err = execute(t, keysCommand(), "rotate", "--postgres", testenv.PostgresURL(), "--schema", schema, "--keys", file)
	if err != nil || !strings.Contains(out, "re-sealed 0 values") {
		t.Fatalf("second keys rotate: %q, %v", out, err)
	}
}

// TestDevSealsByDefault checks that the development stack generates keys
// in its data directory and seals its store with them.
func TestDevSealsByDefault(t *testing.T) {
	m := startHub(t, "memdb")
	for _, f := range []string{"keys", filepath.Join("store", "keys.check")} {
		if _, err := os.Stat(filepath.Join(m.Config.DataDir, f)); err != nil {
			t.Errorf("dev did not seal its store: %v", err)
		}
	}
}

// TestServeWarnsWhenInClear: serve without keys stores a province's
// records in clear; it says so unless the operator chose it (--keys none).
func TestServeWarnsWhenInClear(t *testing.T) {
	t.Setenv("POPHUB_KEYS", "")
	tests := []struct {
		keys string
		warn bool
	}{
		{keys: "", warn: true},
		{keys: noKeys, warn: false},
	}
	for _, tt := range tests {
		var log bytes.Buffer
		m := &Main{Config: Config{KeysFile: tt.keys}, Logger: slog.New(slog.NewTextHandler(&log, nil))}
		src, err := m.keySource()
		if err != nil || src != nil {
			t.Fatalf("--keys %q: %v, %v; want a store in clear", tt.keys, src, err)
		}
		if got := strings.Contains(log.String(), "personal data will be stored in clear"); got != tt.warn {
			t.Errorf("--keys %q: warned %v, want %v:\n%s", tt.keys, got, tt.warn, log.String())
		}
	}
}
