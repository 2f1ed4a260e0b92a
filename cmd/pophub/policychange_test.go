package main

import (
	"context"
	"encoding/json"
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
	dataDir, policyDir := t.TempDir(), t.TempDir()
	ctx := context.Background()

	// start opens the audit trail as Main.Start does under --policy.
	start := func(t *testing.T, policy string) {
		t.Helper()
		path := filepath.Join(policyDir, "policy.yaml")
		if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := access.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		m := &Main{Config: Config{DataDir: dataDir}, Logger: testLogger(t), Access: p}
		if err := m.openAudit(ctx); err != nil {
			t.Fatalf("opening the audit trail: %v", err)
		}
		if err := m.auditLog.Close(ctx); err != nil {
			t.Fatal(err)
		}
		m.auditStore.Close()
	}
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
