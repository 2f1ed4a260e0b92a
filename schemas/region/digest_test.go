package region

import (
	"strings"
	"testing"
)

// TestDigest: hubs compare their tables by digest, so it must be the same
// for tables of the same content, however made, and differ when a single
// class or name differs.
func TestDigest(t *testing.T) {
	overlay := func(csv string) *Table {
		t.Helper()
		o, err := ParseNBS(strings.NewReader("code,class,name\n" + csv))
		if err != nil {
			t.Fatal(err)
		}
		tab, _, _ := Builtin().With(o)
		return tab
	}
	base := Builtin().Digest()
	if len(base) != 16 {
		t.Errorf("digest %q: want 16 hex digits", base)
	}
	if again := Builtin().Digest(); again != base {
		t.Errorf("the built-in table's digest changed from %s to %s", base, again)
	}
	same := overlay("230102001001,112,省报社社区居委会\n")
	if got, want := same.Digest(), overlay("230102001001,112,省报社社区居委会\n").Digest(); got != want {
		t.Errorf("two tables of one overlay: digests %s and %s", got, want)
	}
	differ := map[string]*Table{
		"an official class replacing a derived one": same,
		"another class":  overlay("230102001001,220,省报社社区居委会\n"),
		"another name":   overlay("230102001001,112,省报社社区\n"),
		"an entry added": overlay("230102001999,210,新设村委会\n"),
	}
	seen := map[string]string{base: "the built-in table"}
	for name, tab := range differ {
		d := tab.Digest()
		if other, ok := seen[d]; ok {
			t.Errorf("%s: digest %s, the same as %s", name, d, other)
		}
		seen[d] = name
	}
}
