package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRefusedStartLeavesNothing: a mistyped --eligibility-notify policy
// or a --gateway-tokens file that is not there needs nothing created to be
// found, yet was found only after the data directory had been locked and
// filled (keys, store, the broker's log, the NATS store; on serve, a
// migrated PostgreSQL schema and topics on the cluster). Both are refused
// first now, naming the flag, and the data directory is not created.
func TestRefusedStartLeavesNothing(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"eligibility-notify typo", func(c *Config) { c.EligibilityNotify = []string{"heilongjiang/daqin"} },
			`--eligibility-notify: no policy "heilongjiang/daqin" ('pophub policies list' names them`},
		{"eligibility-notify typo after a good one", func(c *Config) { c.EligibilityNotify = []string{"heilongjiang/daqing", "jilin/nosuch"} },
			`--eligibility-notify: no policy "jilin/nosuch"`},
		{"gateway-tokens missing", func(c *Config) { c.GatewayTokens = "/nonexistent-pophub-tokens" },
			"--gateway-tokens: reading tokens: open /nonexistent-pophub-tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			cfg := Config{Embedded: true, DataDir: data, KafkaAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Partitions: 4}
			tc.cfg(&cfg)
			m := &Main{Config: cfg, Logger: testLogger(t)}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := m.Start(ctx)
			m.Close()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want one starting %q", err, tc.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(data)
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("the refused start created %s with %v", data, names)
			}
		})
	}
}
