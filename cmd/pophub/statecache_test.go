package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestPostgresStateCacheFlag: the memory the PostgreSQL store's cache of
// merge states takes (up to twice the count, about 8 kB a state) is the
// operator's to size, by flag or environment, the flag winning; 0 keeps
// none, and a value that is no count is refused, naming where it came
// from, before anything starts.
func TestPostgresStateCacheFlag(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		args    []string
		want    int    // Config.PostgresStateCache
		wantErr string // "" when accepted
	}{
		{"default", "", nil, defaultStateCache, ""},
		{"flag", "", []string{"--postgres-state-cache", "20000"}, 20000, ""},
		{"none", "", []string{"--postgres-state-cache", "0"}, -1, ""},
		{"environment", "5000", nil, 5000, ""},
		{"flag over environment", "5000", []string{"--postgres-state-cache", "7"}, 7, ""},
		{"negative flag", "", []string{"--postgres-state-cache", "-1"}, 0, "want 0 or more"},
		{"bad environment", "lots", nil, 0, `POPHUB_POSTGRES_STATE_CACHE="lots": want a whole number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POPHUB_POSTGRES_STATE_CACHE", tc.env)
			cmd := &cobra.Command{Use: "serve"}
			var f stateCacheFlag
			f.register(cmd.Flags())
			err := cmd.ParseFlags(tc.args)
			var cfg Config
			if err == nil {
				err = f.apply(cmd, &cfg)
			}
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr == "" && cfg.PostgresStateCache != tc.want:
				t.Errorf("PostgresStateCache = %d, want %d", cfg.PostgresStateCache, tc.want)
			}
		})
	}
	// serve itself refuses them before starting anything.
	t.Setenv("POPHUB_POSTGRES_STATE_CACHE", "lots")
	if _, err := execute(t, rootCommand(), "serve", "--postgres", "postgres://127.0.0.1:1/none", "--kafka", "127.0.0.1:1", "--nats", "nats://127.0.0.1:1"); err == nil ||
		!strings.Contains(err.Error(), "POPHUB_POSTGRES_STATE_CACHE") {
		t.Errorf("serve with POPHUB_POSTGRES_STATE_CACHE=lots: %v, want it refused", err)
	}
}
