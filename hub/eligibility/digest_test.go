package eligibility_test

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pophub/pophub/hub/eligibility"
	"github.com/pophub/pophub/ops/policies"
)

// TestPolicyDigestNamesTheText: a policy's digest changes with what it
// says (a clause's requirement) and not with the file's comments or
// layout, and a policy edited in memory is not taken for the loaded one.
func TestPolicyDigestNamesTheText(t *testing.T) {
	const id = "heilongjiang/daqing"
	orig, err := fstestRead(id + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	load := func(text string) *eligibility.Policy {
		t.Helper()
		cat, err := eligibility.Load(fstest.MapFS{id + ".yaml": {Data: []byte(text)}})
		if err != nil {
			t.Fatal(err)
		}
		p, ok := cat.Policy(id)
		if !ok {
			t.Fatalf("%s not loaded", id)
		}
		return p
	}
	base := load(orig)
	if d := base.Digest(); !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Fatalf("digest %q, want sha256: and 64 hex digits", d)
	}
	if d := load("# edited by the operator\n" + orig + "\n\n").Digest(); d != base.Digest() {
		t.Errorf("a comment and blank lines changed the digest: %s, was %s", d, base.Digest())
	}
	if !strings.Contains(orig, "min_months: 24") {
		t.Fatalf("premise: %s asks for 24 months somewhere", id)
	}
	if d := load(strings.Replace(orig, "min_months: 24", "min_months: 12", 1)).Digest(); d == base.Digest() {
		t.Errorf("a lowered requirement kept the digest %s", d)
	}
	edited := *base
	edited.Title += "（修订）"
	if edited.Digest() == base.Digest() {
		t.Errorf("a policy edited in memory keeps the loaded one's digest %s", base.Digest())
	}
}

func fstestRead(name string) (string, error) {
	b, err := fs.ReadFile(policies.FS(), name)
	return string(b), err
}
