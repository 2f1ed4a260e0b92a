package schemas_test

import (
	"regexp"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// TestFilterConsumerName: the name is stable (the SDK and the access
// policy compute it independently, and a restart must bind the same
// consumer), a valid consumer name, and distinct for the filters of one
// subscriber.
func TestFilterConsumerName(t *testing.T) {
	filters := []string{
		schemas.MigrationOutFilter("2301"), schemas.MigrationInFilter("2301"), schemas.DeathFilter("2301"),
		schemas.ChangedFilter("2301"), schemas.StreamSubjects,
	}
	valid := regexp.MustCompile(`^si-harbin-[0-9a-f]{8}$`)
	seen := map[string]string{}
	for _, f := range filters {
		got := schemas.FilterConsumerName("si-harbin", f)
		if !valid.MatchString(got) {
			t.Errorf("FilterConsumerName(si-harbin, %s) = %q: not name-<8 hex digits>", f, got)
		}
		if again := schemas.FilterConsumerName("si-harbin", f); again != got {
			t.Errorf("FilterConsumerName(si-harbin, %s) changed: %q, then %q", f, got, again)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%s and %s share the consumer name %s", other, f, got)
		}
		seen[got] = f
	}
	// A pinned value: changing the derivation orphans every deployed
	// subscriber's consumers and invalidates the NATS permissions
	// generated from policies, so it must not change silently.
	if got, want := schemas.FilterConsumerName("si-harbin", "pop.death.23.2301.*"), "si-harbin-bcc33398"; got != want {
		t.Errorf("FilterConsumerName(si-harbin, pop.death.23.2301.*) = %q, want %q", got, want)
	}
}
