package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestServeValidate: `pophub serve` without --postgres or --data kept
// the golden records in memory while committing Kafka offsets, so a
// restart lost them all; Validate now refuses it. `pophub dev` may still
// run in memory: its broker forgets the offsets with the records. The
// notification stream's retention may not be shorter than its duplicate
// window.
func TestServeValidate(t *testing.T) {
	serve := func(c Config) Config {
		c.KafkaBrokers, c.NATSURL = []string{"kafka:9092"}, "nats://nats:4222"
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for none
	}{
		{"serve without a store", serve(Config{}), "--postgres or --data is required"},
		{"serve --postgres (docker-compose, README)", serve(Config{PostgresURL: "postgres://pophub:pophub@postgres:5432/pophub"}), ""},
		{"serve --data", serve(Config{DataDir: "/var/lib/pophub"}), ""},
		{"dev in memory", Config{Embedded: true}, ""},
		{"dev --data", Config{Embedded: true, DataDir: "/tmp/pophub"}, ""},
		{"dev --postgres", Config{Embedded: true, PostgresURL: "postgres://localhost/pophub"}, ""},
		{"serve --stream-replicas 3 --stream-max-age 720h", serve(Config{DataDir: "/d", StreamReplicas: 3, StreamMaxAge: 720 * time.Hour}), ""},
		{"serve --stream-replicas 7", serve(Config{DataDir: "/d", StreamReplicas: 7}), "--stream-replicas must be from 1 to 5"},
		{"serve --stream-max-age 1m", serve(Config{DataDir: "/d", StreamMaxAge: time.Minute}), "--stream-max-age must be at least 10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.setDefaults()
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// TestStoreOpenErrorIsReported: a store that cannot be opened (PostgreSQL
// unreachable, a memdb directory another hub holds) gives the operator
// its error from Start, and Close after it does not fail.
func TestStoreOpenErrorIsReported(t *testing.T) {
	held := t.TempDir()
	first := &Main{Logger: testLogger(t), Config: Config{DataDir: held, KeysFile: noKeys}}
	if err := first.openStore(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Store.Close() })
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "PostgreSQL unreachable", want: "opening PostgreSQL store",
			cfg: Config{PostgresURL: "postgres://postgres@127.0.0.1:1/x?connect_timeout=1"}},
		{name: "memdb directory in use", want: "opening memdb store", cfg: Config{DataDir: held}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.KafkaBrokers, tt.cfg.NATSURL, tt.cfg.HTTPAddr, tt.cfg.KeysFile = []string{"127.0.0.1:1"}, "nats://127.0.0.1:1", "127.0.0.1:0", noKeys
			m := &Main{Logger: testLogger(t), Config: tt.cfg}
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Start panicked: %v", r)
					}
				}()
				err = m.Start(context.Background())
				m.Close()
			}()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v; want an error %q", err, tt.want)
			}
		})
	}
}
