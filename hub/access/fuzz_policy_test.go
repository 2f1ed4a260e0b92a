package access

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePolicy: any policy text is parsed and validated, or refused
// with problems, without a panic.
func FuzzParsePolicy(f *testing.F) {
	files, _ := filepath.Glob("../../ops/policies/*/*.yaml")
	files = append(files, "../../ops/policy.example.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<15 {
			return
		}
		p, err := Parse(b)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		for _, id := range p.Identities {
			p.MinCell(id)
			id.Sections()
		}
	})
}
