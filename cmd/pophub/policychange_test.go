package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/hub/audit"
)

// TestPolicyChangeRecorded: a hub starting under a policy records it in
// the audit trail when it differs from the last one recorded, naming the
// identities whose entry changed and no credential, and `pophub audit
// policy-changes` lists it.
func TestPolicyChangeRecorded(t *testing.T) {
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	const harbinRead = `read: ["identity", "hukou", "status", "social_insurance"]`
	if !strings.Contains(string(example), harbinRead) {
		t.Fatalf("the example policy no longer has %s", harbinRead)
	}
	dataDir := t.TempDir()
	ctx := context.Background()
	start := func(t *testing.T, policy string) { t.Helper(); openAuditUnder(t, dataDir, policy) }
	// recorded is the trail's policy changes.
	recorded := func(t *testing.T) []policyDetail {
		t.Helper()
		f, err := audit.OpenFile(filepath.Join(dataDir, "audit.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out []policyDetail
		err = f.Scan(ctx, 0, 0, func(e *audit.Entry) error {
			if e.Action == audit.ActionPolicyChange {
				if e.Identity != "pophub" {
					t.Errorf("recorded by %q, want pophub", e.Identity)
				}
				var d policyDetail
				if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
					t.Errorf("detail %q: %v", e.Detail, err)
				}
				out = append(out, d)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	taxHash := access.HashToken(access.DemoSecret("token:tax"))
	taxToken := "token_sha256: " + taxHash
	if !strings.Contains(string(example), taxToken) {
		t.Fatalf("the example policy no longer has tax's %s", taxToken)
	}
	changed := strings.Replace(string(example), harbinRead, `read: ["identity", "hukou", "status", "social_insurance", "housing"]`, 1)
	for _, step := range []struct {
		name   string
		policy string
		want   int // policy changes recorded after the start
	}{
		{"first start", string(example), 1},
		{"same policy", string(example), 1},
		{"only a comment more", "# reviewed 2026-03-01\n" + string(example), 1},
		{"si-harbin gains housing", changed, 2},
		{"same again", changed, 2},
		// A list of one token is the policy unchanged; a token being
		// rotated, listed beside the old one, is a change of tax.
		{"tax's token as a list of one", strings.Replace(changed, taxToken, "token_sha256: ["+taxHash+"]", 1), 2},
		{"tax's token rotated", strings.Replace(changed, taxToken, "token_sha256: ["+taxHash+", "+access.HashToken("tax's next token")+"]", 1), 3},
	} {
		start(t, step.policy)
		if got := recorded(t); len(got) != step.want {
			t.Fatalf("after %s: %d policy changes recorded, want %d: %+v", step.name, len(got), step.want, got)
		}
	}

	got := recorded(t)
	first, second, third := got[0], got[1], got[2]
	if first.Old != "" || !first.Unknown || first.New == "" || len(first.Identities) == 0 {
		t.Errorf("first entry: %+v", first)
	}
	if second.Old != first.New || second.New == first.New || !slices.Equal(second.Changed, []string{"si-harbin"}) ||
		second.Added != nil || second.Removed != nil || second.SettingsChanged || second.Unknown {
		t.Errorf("second entry: %+v, want si-harbin changed from %s", second, first.New)
	}
	if third.Old != second.New || !slices.Equal(third.Changed, []string{"tax"}) || third.SettingsChanged {
		t.Errorf("third entry: %+v, want tax changed from %s", third, second.New)
	}
	trail, _ := os.ReadFile(filepath.Join(dataDir, "audit.jsonl"))
	for _, secret := range []string{"token_sha256", "0d88f472eead8b33", "$2a$", "env:", "stored_key"} {
		if strings.Contains(string(trail), secret) {
			t.Errorf("the trail holds %q", secret)
		}
	}

	out, err := execute(t, auditCommand(), "policy-changes", "--file", filepath.Join(dataDir, "audit.jsonl"))
	if err != nil || !strings.Contains(out, "3 policy changes") || !strings.Contains(out, `"changed":["si-harbin"]`) {
		t.Errorf("policy-changes: %v\n%s", err, out)
	}
	out, err = execute(t, auditCommand(), "verify", "--file", filepath.Join(dataDir, "audit.jsonl"), "--key-file", filepath.Join(dataDir, "audit.key"))
	if err != nil || !strings.Contains(out, "3 entries") {
		t.Errorf("verify: %v\n%s", err, out)
	}
}

// TestPolicyChangeNamesIdentitiesInALargePolicy: a provincial policy of
// hundreds of identities (a subscriber per district bureau) has identity
// digests too large for one entry's detail. They are written as parts
// before the change, so the next change still names who changed, and
// policy-changes lists the changes only.
func TestPolicyChangeNamesIdentitiesInALargePolicy(t *testing.T) {
	example, err := os.ReadFile(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.Write(example)
	const n = 400
	for i := range n {
		fmt.Fprintf(&b, `
  - name: district-bureau-%03d
    kind: subscriber
    read: ["identity", "hukou", "status"]
    credentials:
      token_sha256: %064x
`, i, i+1)
	}
	large := b.String()
	dataDir := t.TempDir()
	ctx := context.Background()
	start := func(text string) { t.Helper(); openAuditUnder(t, dataDir, text) }
	start(large)
	changed := strings.Replace(large, fmt.Sprintf("token_sha256: %064x", 8), fmt.Sprintf("token_sha256: %064x", 9999), 1)
	changed = strings.Replace(changed, "  - name: district-bureau-042\n", "  - name: district-bureau-042-renamed\n", 1)
	start(changed)
	start(changed) // unchanged: nothing recorded

	f, err := audit.OpenFile(filepath.Join(dataDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var changes []policyDetail
	parts := 0
	if err := f.Scan(ctx, 0, 0, func(e *audit.Entry) error {
		if e.Action != audit.ActionPolicyChange {
			return nil
		}
		if len(e.Detail) > maxPolicyDetail {
			t.Errorf("seq %d: a detail of %d bytes", e.Seq, len(e.Detail))
		}
		var d policyDetail
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Errorf("detail %q: %v", e.Detail, err)
		}
		if d.Part < d.Parts {
			parts++
		} else {
			changes = append(changes, d)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || parts < 4 {
		t.Fatalf("%d changes and %d parts recorded, want 2 changes, each with its digests in parts", len(changes), parts)
	}
	d := changes[1]
	if d.Unknown || !slices.Equal(d.Changed, []string{"district-bureau-007"}) || !slices.Equal(d.Removed, []string{"district-bureau-042"}) ||
		!slices.Equal(d.Added, []string{"district-bureau-042-renamed"}) || d.Old != changes[0].New {
		t.Errorf("the second change of a %d-identity policy: %+v", n, d)
	}

	out, err := execute(t, auditCommand(), "policy-changes", "--file", filepath.Join(dataDir, "audit.jsonl"))
	if err != nil || !strings.Contains(out, "2 policy changes") || !strings.Contains(out, `"changed":["district-bureau-007"]`) {
		t.Errorf("policy-changes: %v\n%s", err, out)
	}
	out, err = execute(t, auditCommand(), "verify", "--file", filepath.Join(dataDir, "audit.jsonl"), "--key-file", filepath.Join(dataDir, "audit.key"))
	if err != nil {
		t.Errorf("verify: %v\n%s", err, out)
	}
}

// openAuditUnder opens the audit trail in dataDir as Main.Start does under
// the policy text, recording it if it changed, and closes it.
func openAuditUnder(t *testing.T, dataDir, policy string) {
	t.Helper()
	p, err := access.Load(writePolicy(t, policy))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := &Main{Config: Config{DataDir: dataDir}, Logger: testLogger(t), Access: p}
	if err := m.openAudit(ctx); err != nil {
		t.Fatalf("opening the audit trail: %v", err)
	}
	if err := m.auditLog.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m.auditStore.Close()
}
