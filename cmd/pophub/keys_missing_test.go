package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/memdb"
	"github.com/pophub/pophub/hub/sealing"
)

// TestMissingKeyFileOfSealedStore: a memdb data directory sealed with its
// generated <data>/keys, which was then lost, must neither be called a
// store in clear nor get a new key that cannot open it; every command that
// opens it says which file to restore.
func TestMissingKeyFileOfSealedStore(t *testing.T) {
	t.Setenv("POPHUB_KEYS", "")
	dir := t.TempDir()
	m := &Main{Config: Config{Embedded: true, DataDir: dir}, Logger: testLogger(t)}
	src, err := m.keySource()
	if err != nil || src == nil {
		t.Fatalf("first start: %v, %v; want generated keys", src, err)
	}
	ctx := context.Background()
	keys, err := sealing.Load(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	s, err := memdb.Open(ctx, memdb.Config{Dir: filepath.Join(dir, "store"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}

	want := []string{filepath.Join(dir, "keys") + " is missing", "restore that file from the backup"}
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s opened a sealed store without its keys", what)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want it to say %q", what, err, w)
			}
		}
	}

	var log bytes.Buffer
	m = &Main{Config: Config{Embedded: true, DataDir: dir}, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	_, err = m.keySource()
	check("dev", err)
	if strings.Contains(log.String(), "in clear") {
		t.Errorf("dev called the sealed store in clear:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "keys")); err == nil {
		t.Error("dev generated a new key file that cannot open the store")
	}

	_, err = execute(t, statsVerifyCommand(), "--data", dir)
	check("stats verify", err)
}
