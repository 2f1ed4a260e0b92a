package audit

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestPurposeMasked: a purpose that names a citizen is stored, and read
// back by who-read, with the ID masked, on both stores, and the chain
// verifies; numbers too short to be IDs stay as they were.
func TestPurposeMasked(t *testing.T) {
	long := strings.Repeat("a", maxField-12)
	tests := []struct {
		name    string
		purpose string
		want    string
	}{
		{"ID in a sentence", "settlement application of 230102199001011230 (张三)", "settlement application of 2301**********1230 (张三)"},
		{"ID ending in X", "transfer for 11010519491231002X", "transfer for 1101**********002X"},
		{"ID in groups", "for 330602-19851021-0103", "for 3306**********0103"},
		{"full-width ID", "核查１１０１０５１９４９１２３１００２Ｘ", "核查1101**********002X"},
		{"legacy 15-digit ID", "old card 230102900101123", "old card 2301*******1123"},
		{"ID cut by the length limit", long + "230102199001011230", long + "2301********"},
		{"short numbers", "case 2026-017, region 230102, desk 12", "case 2026-017, region 230102, desk 12"},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			l, err := NewLog(s, k, LogConfig{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			reader := k.Subject(people[1])
			for i, tc := range tests {
				e := Entry{Time: base.Add(time.Duration(i) * time.Second), Identity: "public_security", Action: ActionReadRecord,
					Subject: reader, Purpose: tc.purpose, Status: 200, Result: "ok"}
				if err := l.Append(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := s.WhoRead(ctx, reader, base, base.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tests) {
				t.Fatalf("who-read found %d entries, want %d", len(got), len(tests))
			}
			for i, tc := range tests {
				if got[i].Purpose != tc.want {
					t.Errorf("%s: stored purpose %q, want %q", tc.name, got[i].Purpose, tc.want)
				}
			}
			if rep, err := Verify(ctx, s, VerifyOptions{Key: k}); err != nil || !rep.OK() {
				t.Errorf("verify: %+v, %v", rep, err)
			}
		})
	}
}
