package gateway

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// TestOneTokenOneEntry: a token hash may appear once in the tokens file. A
// hash under two departments would let one department's token publish as
// the other's; a hash listed twice under the same department is a
// copy-paste slip that hides a department left without its own entry. Both
// are refused when the file is loaded, naming both entries, whatever the
// case of the hex digits.
func TestOneTokenOneEntry(t *testing.T) {
	h, other := HashToken("housing-secret"), HashToken("tax-secret")
	entry := func(source, sum string) string { return "  - source: " + source + "\n    sha256: " + sum + "\n" }
	tests := []struct {
		name    string
		entries string
		refused []string // substrings of the error; nil: loaded
	}{
		{"one token each", entry("housing", h) + entry("tax", other), nil},
		{"one token for two departments", entry("housing", h) + entry("tax", h),
			[]string{"token 2 (tax)", "token 1 (housing)"}},
		{"in another case", entry("housing", h) + entry("health", other) + entry("tax", strings.ToUpper(h)),
			[]string{"token 3 (tax)", "token 1 (housing)"}},
		{"twice for one department", entry("housing", h) + entry("housing", h),
			[]string{"token 2 (housing)", "token 1 (housing)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.yaml")
			writeFile(t, path, "tokens:\n"+tc.entries)
			toks, err := LoadTokens(path)
			if tc.refused == nil {
				if err != nil {
					t.Fatalf("LoadTokens: %v", err)
				}
				if _, err := New(Config{Sender: &recordingSender{}, Tokens: toks}); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded %+v, want it refused", toks)
			}
			for _, want := range tc.refused {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
	// Config.Validate (and so New) refuses the same, for tokens not read
	// from a file.
	dup := []Token{{Source: schemas.Housing, SHA256: h}, {Source: schemas.Tax, SHA256: strings.ToUpper(h)}}
	if _, err := New(Config{Sender: &recordingSender{}, Tokens: dup}); err == nil {
		t.Error("New accepted one token for two departments")
	}
}
