package main

import (
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
)

// fileState is what a file under a data directory looked like: a second
// hub refused on the directory must leave it as it was.
type fileState struct {
	mod  time.Time
	data string
}

// filesUnder records every regular file under dir.
func filesUnder(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	files := map[string]fileState{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[path] = fileState{mod: info.ModTime(), data: string(data)}
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	return files
}

// TestDevDataDirInUse: a second `pophub dev --data D` on the directory a
// running hub uses is refused before its embedded broker and NATS server
// touch D/kafka and D/nats, with memdb and with PostgreSQL (which has no
// store lock of its own).
func TestDevDataDirInUse(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Embedded: true, DataDir: dir, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Partitions: 4, NATSSync: time.Second}
			if store == "postgres" {
				cfg.PostgresURL = testenv.Postgres(t)
				cfg.PostgresSchema = testenv.Schema(t)
			}
			startMain(t, cfg)
			time.Sleep(2 * time.Second) // let the first hub's start-up writes settle
			before := map[string]map[string]fileState{}
			for _, sub := range []string{"kafka", "nats"} {
				before[sub] = filesUnder(t, filepath.Join(dir, sub))
				if len(before[sub]) == 0 {
					t.Fatalf("the running hub keeps no files under %s", filepath.Join(dir, sub))
				}
			}

			second := &Main{Config: cfg, Logger: testLogger(t)}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := second.Start(ctx)
			second.Close()
			if err == nil {
				t.Fatal("a second hub started on the data directory of a running one")
			}
			if want := "data directory " + dir + " is in use by another pophub process"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			for sub, files := range before {
				after := filesUnder(t, filepath.Join(dir, sub))
				for path, was := range files {
					now, ok := after[path]
					switch {
					case !ok:
						t.Errorf("%s was removed", path)
					case !now.mod.Equal(was.mod) || now.data != was.data:
						t.Errorf("%s was rewritten (modified %v, was %v)", path, now.mod, was.mod)
					}
				}
				for path := range after {
					if _, ok := files[path]; !ok {
						t.Errorf("%s was created", path)
					}
				}
			}
		})
	}
}

// TestBannerRedactsCredentials: the start-up banner hides the passwords in
// the NATS and Kafka addresses, as the logs do.
func TestBannerRedactsCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := &Main{
		Config:  Config{PostgresURL: "postgres://hub:PgSecret1@db/pophub"},
		ln:      ln,
		brokers: []string{"kuser:KafkaSecret1@127.0.0.1:9092", "127.0.0.1:9093"},
		natsURL: "nats://hubuser:NatsSecret1@127.0.0.1:4222",
	}
	var out bytes.Buffer
	printRunning(&out, m)
	for _, secret := range []string{"PgSecret1", "KafkaSecret1", "NatsSecret1"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the banner shows %s:\n%s", secret, out.String())
		}
	}
	for _, want := range []string{"nats://hubuser:xxxxx@127.0.0.1:4222", "127.0.0.1:9093"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the banner lacks %s:\n%s", want, out.String())
		}
	}
}

// TestPoliciesDirMissing: a --policies directory that is not there is
// named in the error, before dev has created keys or a store.
func TestPoliciesDirMissing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir, want string }{
		{"missing", "/nonexistent-pophub-policies", "--policies /nonexistent-pophub-policies: no such directory"},
		{"file", file, "--policies " + file + ": not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			m := &Main{Config: Config{Embedded: true, DataDir: data, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
				Partitions: 4, PoliciesDir: tc.dir}, Logger: testLogger(t)}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := m.Start(ctx)
			m.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(data)
				t.Errorf("the refused start created %s (%d entries)", data, len(entries))
			}
		})
	}
}
