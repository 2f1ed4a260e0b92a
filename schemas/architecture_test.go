package schemas_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDependenciesPointInward keeps the layering of the tree: the wire
// contract imports nothing of ours; the pure core imports only the domain
// and the contract; the department and subscriber sides never import the
// hub. Test files are not checked.
func TestDependenciesPointInward(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/pophub/pophub/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/pophub/pophub/"
	// Leaf helpers the outer layers share: they import nothing of ours.
	leaves := []string{"internal/tlshttp", "internal/pgmigrate", "internal/pgreach", "internal/kafkaheaders", "internal/par", "internal/bearer"}
	// Helpers the outer layers share that build on the contract only.
	onContract := []string{"internal/tracestate"}
	type rule struct {
		pkg     string // prefix
		allowed []string
	}
	rules := []rule{
		{"schemas", []string{"schemas"}},
		{"hub/merge", []string{"hub", "schemas"}},
		{"adapters", slices.Concat([]string{"adapters", "schemas"}, leaves, onContract)},
		{"consumers", slices.Concat([]string{"consumers", "schemas", "adapters"}, leaves, onContract)},
	}
	for _, leaf := range leaves {
		rules = append(rules, rule{leaf, nil})
	}
	for _, p := range onContract {
		rules = append(rules, rule{p, []string{"schemas"}})
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, r := range rules {
			if rel != r.pkg && !strings.HasPrefix(rel, r.pkg+"/") {
				continue
			}
			checked++
			for _, imp := range p.Imports {
				if !strings.HasPrefix(imp, mod) {
					continue
				}
				dep := strings.TrimPrefix(imp, mod)
				ok := false
				for _, a := range r.allowed {
					if dep == a || strings.HasPrefix(dep, a+"/") {
						ok = true
					}
				}
				if r.pkg == "hub/merge" && strings.HasPrefix(dep, "hub/") {
					ok = false // the pure core may use hub itself, not its I/O packages
				}
				if !ok {
					t.Errorf("%s imports %s", rel, dep)
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d packages", checked)
	}
}
