package audit

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// otherKey is a fixed audit key other than testKey.
func otherKey(t testing.TB) Key {
	t.Helper()
	k, err := ParseKey("ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCheckKey: an empty log takes any key; a log takes only the key that
// sealed its head, or its anchor once every entry was purged.
func TestCheckKey(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k, other := testKey(t), otherKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			if err := CheckKey(ctx, s, other); err != nil {
				t.Errorf("empty log: %v", err)
			}
			now := time.Now().UTC()
			fill(t, s, k, now.AddDate(-4, 0, 0), 5, 2)
			check := func(name string) {
				t.Helper()
				if err := CheckKey(ctx, s, k); err != nil {
					t.Errorf("%s, the sealing key: %v", name, err)
				}
				if err := CheckKey(ctx, s, other); !errors.Is(err, ErrKeyMismatch) ||
					!strings.Contains(err.Error(), "the audit key does not match the one this log is sealed with") {
					t.Errorf("%s, another key: %v, want ErrKeyMismatch", name, err)
				}
			}
			check("entries")
			if n, err := s.Purge(ctx, now, Retention{}); err != nil || n.Deleted() != 5 {
				t.Fatalf("purged %+v, %v; want 5 deleted", n, err)
			}
			check("all purged")
		})
	}
}

// TestVerifyExpectAfterPurge: a manifest whose head a lawful purge
// removed, or left as the anchor, is no sign of tampering. Before, any
// expectation at or below the anchor was reported as changed.
func TestVerifyExpectAfterPurge(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			now := time.Now().UTC()
			fill(t, s, k, now.AddDate(0, -8, 0), 3, 3) // 1-3: expired reads
			fill(t, s, k, now.AddDate(0, 0, -1), 2, 2) // 4-5: kept
			var all []Entry
			if err := s.Scan(ctx, 0, 0, func(e *Entry) error { all = append(all, *e); return nil }); err != nil {
				t.Fatal(err)
			}
			if n, err := s.Purge(ctx, now, Retention{}); err != nil || n.Deleted() != 3 {
				t.Fatalf("purged %+v, %v; want 3 deleted", n, err)
			}
			tests := []struct {
				name   string
				expect Link
				ok     bool
				kind   Kind
				note   string
			}{
				{"purged", all[1].link(), true, 0, "purged"},
				{"the anchor", all[2].link(), true, 0, ""},
				{"the anchor's seq, another hash", Link{Seq: 3, Hash: all[0].Hash}, false, Changed, ""},
				{"a kept entry", all[4].link(), true, 0, ""},
				{"past the head", Link{Seq: 7, Hash: all[0].Hash}, false, Removed, ""},
			}
			for _, tc := range tests {
				rep, err := Verify(ctx, s, VerifyOptions{Key: k, Expect: tc.expect})
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK() != tc.ok || (!tc.ok && rep.Problems[0].Kind != tc.kind) {
					t.Errorf("%s: problems %v, want ok %v (kind %v)", tc.name, rep.Problems, tc.ok, tc.kind)
				}
				if got := strings.Join(rep.Notes, "\n"); !strings.Contains(got, tc.note) || (tc.note == "" && got != "") {
					t.Errorf("%s: notes %q, want one saying %q", tc.name, got, tc.note)
				}
			}
		})
	}
}

// TestExportRefusesForged: given the audit key, Export refuses a stretch
// holding an entry rewritten by someone without the key (its hash chain
// recomputed), which it would otherwise sign; without the key it cannot
// tell.
func TestExportRefusesForged(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, tamper := b.open(t)
			fill(t, s, k, base, 5, 5)
			tamper.rewrite(t, func(all []Entry) []Entry {
				all[1].Identity = "someone-else"
				prev := all[0].Hash
				for i := 1; i < len(all); i++ {
					all[i].Prev = prev
					all[i].Hash = HashEntry(prev, &all[i])
					prev = all[i].Hash
				}
				return all
			})
			ctx := context.Background()
			var archive bytes.Buffer
			if _, err := Export(ctx, s, base, base.Add(time.Hour), &archive, k); err == nil || !strings.Contains(err.Error(), "forged") {
				t.Errorf("export with the key: %v, want a refusal naming a forged entry", err)
			}
			if _, err := Export(ctx, s, base, base.Add(time.Hour), &archive, otherKey(t)); err == nil {
				t.Error("export with another key succeeded")
			}
			archive.Reset()
			if _, err := Export(ctx, s, base, base.Add(time.Hour), &archive, Key{}); err != nil {
				t.Errorf("export without a key: %v", err)
			}
		})
	}
}
