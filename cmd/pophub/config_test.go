package main

import (
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
