package audit

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var base = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// TestTamperDetected: each way of changing a stored log is reported as the
// right kind of problem at the right sequence number, on both stores.
func TestTamperDetected(t *testing.T) {
	const n = 20
	tests := []struct {
		name     string
		fileOnly bool
		tamper   func(k Key, es []Entry) []Entry
		noKey    bool // verify without the key
		kind     Kind
		seq      int64
		count    int64
	}{
		{name: "changed identity", tamper: func(_ Key, es []Entry) []Entry { es[9].Identity = "someone-else"; return es }, kind: Changed, seq: 10, count: 1},
		{name: "changed sections", tamper: func(_ Key, es []Entry) []Entry { es[3].Sections = []string{"identity"}; return es }, kind: Changed, seq: 4, count: 1},
		{name: "changed time", tamper: func(_ Key, es []Entry) []Entry { es[0].Time = es[0].Time.Add(time.Hour); return es }, kind: Changed, seq: 1, count: 1},
		{name: "changed last", tamper: func(_ Key, es []Entry) []Entry { es[n-1].Result = "denied"; return es }, kind: Changed, seq: n, count: 1},
		{name: "deleted row", tamper: func(_ Key, es []Entry) []Entry { return append(es[:9:9], es[10:]...) }, kind: Removed, seq: 10, count: 1},
		{name: "deleted two rows", tamper: func(_ Key, es []Entry) []Entry { return append(es[:9:9], es[11:]...) }, kind: Removed, seq: 10, count: 2},
		{name: "deleted first row", tamper: func(_ Key, es []Entry) []Entry { return es[1:] }, kind: Removed, seq: 1, count: 1},
		{name: "swapped rows", tamper: func(_ Key, es []Entry) []Entry {
			es[9], es[10] = es[10], es[9]
			es[9].Seq, es[10].Seq = 10, 11
			return es
		}, kind: Reordered, seq: 10},
		{name: "swapped lines", fileOnly: true, tamper: func(_ Key, es []Entry) []Entry { es[9], es[10] = es[10], es[9]; return es }, kind: Reordered, seq: 10},
		{name: "moved line", fileOnly: true, tamper: func(_ Key, es []Entry) []Entry {
			moved := es[4]
			es = append(es[:4:4], es[5:]...)
			return append(es[:10:10], append([]Entry{moved}, es[10:]...)...)
		}, kind: Reordered, seq: 5},
		{name: "forged hash", tamper: func(_ Key, es []Entry) []Entry {
			es[9].Purpose = "curiosity"
			es[9].Hash = HashEntry(es[9].Prev, &es[9])
			return es
		}, kind: Forged, seq: 10, count: 1},
		{name: "forged hash without key", noKey: true, tamper: func(_ Key, es []Entry) []Entry {
			es[9].Purpose = "curiosity"
			es[9].Hash = HashEntry(es[9].Prev, &es[9])
			return es
		}, kind: Broken, seq: 10, count: 1},
		{name: "forged chain", tamper: func(_ Key, es []Entry) []Entry {
			// Rewrite entry 10 and re-chain everything after it with a key
			// that is not the hub's: the SHA-256 chain is whole again,
			// only the seals give it away.
			es[9].Identity = "nobody"
			other, _ := NewKey([]byte(strings.Repeat("x", 32)))
			tail := es[9:]
			newChainer(other).link(Link{Seq: 9, Hash: es[8].Hash}, tail)
			return es
		}, kind: Forged, seq: 10, count: n - 9},
		{name: "garbage hash", tamper: func(_ Key, es []Entry) []Entry { es[9].Hash[0] ^= 1; return es }, kind: Changed, seq: 10, count: 1},
		{name: "renumbered", tamper: func(_ Key, es []Entry) []Entry {
			// Delete entry 10 and renumber the rest to hide the gap.
			es = append(es[:9:9], es[10:]...)
			for i := 9; i < len(es); i++ {
				es[i].Seq--
			}
			return es
		}, kind: Broken, seq: 9, count: 1},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				if tc.fileOnly && b.name != "file" {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					k := testKey(t)
					s, tam := b.open(t)
					fill(t, s, k, base, n, 7)
					ctx := context.Background()
					rep, err := Verify(ctx, s, VerifyOptions{Key: k})
					if err != nil || !rep.OK() || rep.Entries != n || rep.Head.Seq != n {
						t.Fatalf("before tampering: %+v, %v", rep, err)
					}
					tam.rewrite(t, func(es []Entry) []Entry { return tc.tamper(k, es) })
					opt := VerifyOptions{Key: k}
					if tc.noKey {
						opt = VerifyOptions{}
					}
					rep, err = Verify(ctx, s, opt)
					if err != nil {
						t.Fatal(err)
					}
					if rep.OK() {
						t.Fatalf("not detected: %+v", rep)
					}
					p := rep.Problems[0]
					if p.Kind != tc.kind || p.Seq != tc.seq || (tc.count > 0 && p.Count != tc.count) {
						t.Errorf("first problem %v; want %v at seq %d (count %d); all: %v", p, tc.kind, tc.seq, tc.count, rep.Problems)
					}
				})
			}
		})
	}
}

// TestTruncatedHeadNeedsAnAnchor: removing the newest entries leaves the
// log self-consistent; the head of an earlier export catches it.
func TestTruncatedHeadNeedsAnAnchor(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, tam := b.open(t)
			fill(t, s, k, base, 10, 10)
			ctx := context.Background()
			before, err := Verify(ctx, s, VerifyOptions{Key: k})
			if err != nil || !before.OK() {
				t.Fatal(before, err)
			}
			tam.rewrite(t, func(es []Entry) []Entry { return es[:8] })
			rep, _ := Verify(ctx, s, VerifyOptions{Key: k})
			if !rep.OK() {
				t.Errorf("a truncated log should verify on its own: %v", rep.Problems)
			}
			rep, _ = Verify(ctx, s, VerifyOptions{Key: k, Expect: before.Head})
			if rep.OK() || rep.Problems[0].Kind != Removed || rep.Problems[0].Seq != 9 || rep.Problems[0].Count != 2 {
				t.Errorf("with the earlier head: %v", rep.Problems)
			}
		})
	}
}

// TestTriggerRefusesChanges: UPDATE, DELETE and TRUNCATE of the audit
// tables fail, also for the purge flag when an entry is within its floor.
func TestTriggerRefusesChanges(t *testing.T) {
	p := testPostgres(t)
	k := testKey(t)
	fill(t, p, k, time.Now().Add(-time.Hour), 5, 5)
	ctx := context.Background()
	for _, sql := range []string{
		"UPDATE " + p.log + " SET identity = 'x' WHERE seq = 2",
		"DELETE FROM " + p.log + " WHERE seq = 2",
		"TRUNCATE " + p.log,
		"INSERT INTO " + p.anch + " VALUES (1, 1, now(), '\\x00', '\\x00'); UPDATE " + p.anch + " SET seq = 2",
	} {
		if _, err := p.pool.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refused as append-only", sql, err)
		}
	}
	// With the purge flag, a recent entry is still protected.
	_, err := p.pool.Exec(ctx, "BEGIN; SELECT set_config('pophub.audit_purge', 'on', true); DELETE FROM "+p.log+" WHERE seq = 1; COMMIT")
	if err == nil || !strings.Contains(err.Error(), "legal retention floor") {
		t.Errorf("purge-flag DELETE of a recent entry: %v", err)
	}
	rep, err := Verify(ctx, p, VerifyOptions{Key: k})
	if err != nil || !rep.OK() || rep.Entries != 5 {
		t.Errorf("after refused changes: %+v, %v", rep, err)
	}
}

// TestRetention: floors are enforced; a purge removes the expired prefix,
// keeps an anchor, redacts the expired entries after it, and the rest
// verifies and goes on growing.
func TestRetention(t *testing.T) {
	for _, r := range []Retention{{AccessMonths: 5}, {ProcessingMonths: 35}, {AccessMonths: 1, ProcessingMonths: 12}} {
		if err := r.Validate(); !errors.Is(err, ErrBelowFloor) {
			t.Errorf("%+v: %v, want ErrBelowFloor", r, err)
		}
	}
	// A far longer retention would wrap the cut-off to a recent time.
	for _, r := range []Retention{{AccessMonths: MaxRetentionMonths + 1}, {ProcessingMonths: 999999999999999}, {ProcessingMonths: math.MaxInt}} {
		if err := r.Validate(); !errors.Is(err, ErrAboveCeiling) {
			t.Errorf("%+v: %v, want ErrAboveCeiling", r, err)
		}
	}
	for _, r := range []Retention{{}, {AccessMonths: 6}, {AccessMonths: 12, ProcessingMonths: 60}, {ProcessingMonths: MaxRetentionMonths}} {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			now := time.Now().UTC()
			c := newChainer(k)
			add := func(at time.Time, a Action) {
				t.Helper()
				batch := []Entry{{Time: at, Identity: "d", Action: a, Result: "ok"}}
				if err := s.Append(ctx, batch, func(h Link) Link { return c.link(h, batch) }); err != nil {
					t.Fatal(err)
				}
			}
			old := now.AddDate(-4, 0, 0)
			add(old, ActionReadRecord)                     // 1: expired
			add(old.Add(time.Hour), ActionPolicyChange)    // 2: expired (over 3 years)
			add(now.AddDate(0, -8, 0), ActionReadRecord)   // 3: expired (over 6 months)
			add(now.AddDate(-2, 0, 0), ActionPolicyChange) // 4: kept (under 3 years)
			add(now.AddDate(0, -7, 0), ActionReadRecord)   // 5: expired behind 4: redacted
			add(now.AddDate(0, 0, -1), ActionReadRecord)   // 6: kept
			if _, err := s.Purge(ctx, now, Retention{AccessMonths: 3}); !errors.Is(err, ErrBelowFloor) {
				t.Errorf("purge below the floor: %v", err)
			}
			n, err := s.Purge(ctx, now, Retention{})
			want := PurgeResult{Access: PurgeCount{Deleted: 2, Redacted: 1}, Processing: PurgeCount{Deleted: 1}}
			if err != nil || n != want {
				t.Fatalf("purged %+v, %v; want %+v", n, err, want)
			}
			a, _ := s.Anchor(ctx)
			if a.Seq != 3 {
				t.Errorf("anchor %+v, want seq 3", a)
			}
			add(now, ActionStatsPull) // 7: chained after the purge
			rep, err := Verify(ctx, s, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Entries != 4 || rep.Redacted != 1 || rep.Anchor.Seq != 3 || rep.Head.Seq != 7 {
				t.Errorf("after purge: %+v, %v", rep, err)
			}
			if n, err := s.Purge(ctx, now, Retention{}); err != nil || n != (PurgeResult{}) {
				t.Errorf("second purge: %+v, %v", n, err)
			}
		})
	}
}

// TestWhoRead finds a citizen's entries by the keyed hash, and no clear
// ID is stored.
func TestWhoRead(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			fill(t, s, k, base, 40, 40)
			ctx := context.Background()
			got, err := s.WhoRead(ctx, k.Subject(people[1]), base, base.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			// sample: reads at i%5 in {0,1,3}, citizen people[i%4].
			var want []int64
			for i := range 40 {
				if a := i % 5; (a == 0 || a == 1 || a == 3) && i%4 == 1 {
					want = append(want, int64(i+1))
				}
			}
			if len(got) != len(want) {
				t.Fatalf("got %d entries, want %d", len(got), len(want))
			}
			for i, e := range got {
				if e.Seq != want[i] || e.Identity == "" || e.Purpose == "" {
					t.Errorf("entry %d: %+v, want seq %d", i, e, want[i])
				}
			}
			got, _ = s.WhoRead(ctx, k.Subject(people[1]), base.Add(10*time.Second), base.Add(20*time.Second))
			for _, e := range got {
				if e.Time.Before(base.Add(10*time.Second)) || !e.Time.Before(base.Add(20*time.Second)) {
					t.Errorf("outside the range: %v", e.Time)
				}
			}
			var dump strings.Builder
			s.Scan(ctx, 0, 0, func(e *Entry) error {
				b, _ := jsonLine(e)
				dump.Write(b)
				return nil
			})
			for _, id := range people {
				if strings.Contains(dump.String(), string(id)) || strings.Contains(dump.String(), string(id)[:17]) {
					t.Errorf("the log holds a clear citizen ID")
				}
			}
		})
	}
}

// TestLastPolicyChange finds the newest policy change on both stores, as
// a starting hub asks for it.
func TestLastPolicyChange(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			if e, ok, err := s.LastPolicyChange(ctx); err != nil || ok {
				t.Fatalf("empty log: %+v, %v, %v", e, ok, err)
			}
			fill(t, s, k, base, 12, 5) // sample: a policy change at i%5 == 4, so seq 5 and 10
			fill(t, s, k, base.Add(time.Hour), 3, 3)
			e, ok, err := s.LastPolicyChange(ctx)
			if err != nil || !ok || e.Seq != 10 || e.Action != ActionPolicyChange || e.Detail == "" {
				t.Fatalf("got %+v, %v, %v; want seq 10", e, ok, err)
			}
		})
	}
}

// TestFilePolicyMark: the File's mark is only a short cut. Without it, or
// with one that names the wrong line, the log is read backwards; a purge
// moves it to the entry's new place.
func TestFilePolicyMark(t *testing.T) {
	k := testKey(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, f *File)
	}{
		{"mark", func(*testing.T, *File) {}},
		{"no mark", func(t *testing.T, f *File) { f.writePolicyMark(nil) }},
		{"a mark naming another line", func(t *testing.T, f *File) { f.writePolicyMark(&policyMark{Offset: 0, Seq: 13}) }},
		{"a mark past the end", func(t *testing.T, f *File) { f.writePolicyMark(&policyMark{Offset: 1 << 40, Seq: 13}) }},
		{"an unreadable mark", func(t *testing.T, f *File) {
			os.WriteFile(f.Path()+policyMarkSuffix, []byte("{"), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFile(t)
			fill(t, f, k, now.AddDate(-4, 0, 0), 12, 5) // past every floor: purged
			fill(t, f, k, now, 14, 4)                   // policy changes at seq 17 and 22
			fill(t, f, k, now.Add(time.Second), 3, 3)
			tc.spoil(t, f)
			if e, ok, err := f.LastPolicyChange(ctx); err != nil || !ok || e.Seq != 22 {
				t.Fatalf("got seq %d, %v, %v; want 22", e.Seq, ok, err)
			}
			if n, err := f.Purge(ctx, now, Retention{}); err != nil || n.Deleted() != 12 {
				t.Fatalf("purge: %+v, %v", n, err)
			}
			r, _ := os.Open(f.Path())
			defer r.Close()
			if e, _, ok := f.markedPolicyChange(r); !ok || e.Seq != 22 {
				t.Errorf("after the purge the mark names seq %d, %v; want 22", e.Seq, ok)
			}
		})
	}
}

// TestLastPolicyLineChunks reads backwards in chunks of every size from
// the longest line up, so lines cut by a chunk's edge are put together.
func TestLastPolicyLineChunks(t *testing.T) {
	k := testKey(t)
	f := testFile(t)
	fill(t, f, k, base, 30, 7) // the last policy change: i = 29, seq 30
	fill(t, f, k, base.Add(time.Hour), 4, 4)
	r, err := os.Open(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A torn line at the end is left out.
	w, _ := os.OpenFile(f.Path(), os.O_WRONLY|os.O_APPEND, 0)
	w.WriteString(`{"seq":35,"time":"2026-03-01T09:00:00Z","identity":"x","action":"policy_change"`)
	w.Close()
	st, _ := r.Stat()
	longest := 0
	b, _ := os.ReadFile(f.Path())
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		longest = max(longest, len(line))
	}
	for chunk := int64(longest); chunk < st.Size()+10; chunk += 37 {
		e, off, ok, err := lastPolicyLine(context.Background(), r, st.Size(), chunk)
		if err != nil || !ok || e.Seq != 30 {
			t.Fatalf("chunk %d: seq %d, %v, %v; want 30", chunk, e.Seq, ok, err)
		}
		// The offset is the line's: reading back from it finds the one
		// before.
		if line, err := readLineAt(r, off); err != nil || !bytes.Contains(line, []byte(`"seq":30,`)) {
			t.Fatalf("chunk %d: offset %d holds %q, %v; want seq 30's line", chunk, off, line, err)
		}
		if e, _, ok, err := lastPolicyLine(context.Background(), r, off, chunk); err != nil || !ok || e.Seq != 25 {
			t.Fatalf("chunk %d: before offset %d: seq %d, %v, %v; want 25 (policy changes every fifth entry)", chunk, off, e.Seq, ok, err)
		}
	}
}

// TestPolicyChangesBefore finds the policy changes older than one, newest
// first, on both stores: the parts of a change written in several
// entries.
func TestPolicyChangesBefore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			fill(t, s, k, base, 30, 7) // policy changes every fifth entry: seq 5, 10, …, 30
			seqs := func(seq int64, n int) []int64 {
				t.Helper()
				es, err := s.PolicyChangesBefore(ctx, seq, n)
				if err != nil {
					t.Fatal(err)
				}
				var out []int64
				for _, e := range es {
					if e.Action != ActionPolicyChange {
						t.Errorf("seq %d is a %s", e.Seq, e.Action)
					}
					out = append(out, e.Seq)
				}
				return out
			}
			for _, tc := range []struct {
				seq  int64
				n    int
				want []int64
			}{
				{30, 3, []int64{25, 20, 15}},
				{30, 100, []int64{25, 20, 15, 10, 5}},
				{12, 2, []int64{10, 5}},
				{5, 2, nil},
			} {
				if got := seqs(tc.seq, tc.n); !slices.Equal(got, tc.want) {
					t.Errorf("before %d, up to %d: %v, want %v", tc.seq, tc.n, got, tc.want)
				}
			}
			if f, ok := s.(*File); ok {
				f.writePolicyMark(nil) // read from the end instead
				if got := seqs(30, 2); !slices.Equal(got, []int64{25, 20}) {
					t.Errorf("without the mark: %v, want [25 20]", got)
				}
			}
		})
	}
}
