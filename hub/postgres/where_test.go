package postgres

import (
	"strings"
	"testing"
)

// TestWhereNamesStoreWithoutCredentials: the store an operator's output
// names is every server a connection string may reach (a multi-host
// string falls back from one to the next), its database and schema, and
// never a password, whichever form the string gives it in.
func TestWhereNamesStoreWithoutCredentials(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"postgres://bob:secret@db:5432/pop", "db:5432, database pop, schema public"},
		{"postgres://bob@db/pop?password=secret&search_path=hub", "db:5432, database pop, schema hub"},
		{"host=db port=6432 user=bob password=secret dbname=pop", "db:6432, database pop, schema public"},
		{"host=primary,standby dbname=pop password=secret user=bob", "primary:5432,standby:5432, database pop, schema public"},
		{"postgres://bob:secret@primary:5432,standby:5433/pop", "primary:5432,standby:5433, database pop, schema public"},
	}
	for _, tt := range tests {
		got := Where(tt.url, "")
		if strings.Contains(got, "secret") || got != tt.want {
			t.Errorf("Where(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
