package audit

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestPurgeKeepsEligibilityDecisions: an eligibility decision is a
// processing record, kept 3 years: a purge 7 months later deletes the
// reads around it but leaves the decision whole, and who-read still finds
// it, on both stores (the PostgreSQL trigger checks the floors again).
func TestPurgeKeepsEligibilityDecisions(t *testing.T) {
	if got := ActionDecideEligibility.Class(); got != ClassProcessing {
		t.Fatalf("%s is class %d, want ClassProcessing", ActionDecideEligibility, got)
	}
	id := citizenid.ID("230102199001011230")
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			now := time.Now().UTC()
			c := newChainer(k)
			add := func(at time.Time, a Action) {
				t.Helper()
				var detail string // a read's is empty
				if a == ActionDecideEligibility {
					detail = "eligibility decision"
				}
				batch := []Entry{{Time: at, Identity: "housing-bureau", Action: a, Subject: k.Subject(id),
					Purpose: "settlement application", Status: 200, Result: "ok", Detail: detail}}
				if err := s.Append(ctx, batch, func(h Link) Link { return c.link(h, batch) }); err != nil {
					t.Fatal(err)
				}
			}
			add(now.AddDate(0, -8, 0), ActionReadRecord)        // 1: expired, deleted
			add(now.AddDate(0, -7, 0), ActionDecideEligibility) // 2: kept whole
			add(now.AddDate(0, -7, 0), ActionReadRecord)        // 3: expired behind 2, redacted
			res, err := s.Purge(ctx, now, Retention{})
			want := PurgeResult{Access: PurgeCount{Deleted: 1, Redacted: 1}}
			if err != nil || res != want {
				t.Fatalf("purged %+v, %v; want %+v", res, err, want)
			}
			got, err := s.WhoRead(ctx, k.Subject(id), time.Time{}, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Seq != 2 || got[0].Action != ActionDecideEligibility || got[0].Identity != "housing-bureau" {
				t.Fatalf("who-read after the purge: %+v, want the decision (seq 2) whole", got)
			}
			if rep, err := Verify(ctx, s, VerifyOptions{Key: k}); err != nil || !rep.OK() {
				t.Errorf("verify after the purge: %+v, %v", rep, err)
			}
		})
	}
}

// TestPurgeKeepsDecisionsOfEarlierRelease: decisions written by a release
// of 2026-12-06 or earlier (or by an instance of one still running beside
// a newer one on the same PostgreSQL) are read_record entries whose detail
// says "eligibility decision…". They are processing records all the same
// (PIPL art. 56, 3 years): a purge 7 months later keeps them, and who-read
// still finds them.
func TestPurgeKeepsDecisionsOfEarlierRelease(t *testing.T) {
	id := citizenid.ID("230102199001011230")
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			now := time.Now().UTC()
			c := newChainer(k)
			add := func(at time.Time, a Action, detail string) {
				t.Helper()
				batch := []Entry{{Time: at, Identity: "housing-bureau", Action: a, Subject: k.Subject(id),
					Purpose: "settlement application", Status: 200, Result: "ok", Detail: detail}}
				if err := s.Append(ctx, batch, func(h Link) Link { return c.link(h, batch) }); err != nil {
					t.Fatal(err)
				}
			}
			add(now.AddDate(0, -7, 0), ActionReadRecord, "eligibility decision")                           // previous release: decision about the citizen
			add(now.AddDate(0, -7, 0), ActionReadRecord, "eligibility decision: listed as family member")  // previous release: listed as family
			add(now.AddDate(0, -1, 0), ActionDecideEligibility, "eligibility decision p as of 2026-11-06") // this release
			res, err := s.Purge(ctx, now, Retention{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.WhoRead(ctx, k.Subject(id), time.Time{}, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Errorf("purge %+v: 7 months after two decisions of an earlier release, who-read finds %d of 3 entries (%+v)", res, len(got), got)
			}
		})
	}
}

// TestPurgeRemovesCopiesOfKilledPurges: a purge of the file log writes
// the retained lines to a copy beside the log and renames it over; one
// killed before the rename (kill -9, the OOM killer) left that whole copy
// behind for good. The next purge, holding the lock no other purge holds
// meanwhile, removes such copies; other files in the directory stay.
func TestPurgeRemovesCopiesOfKilledPurges(t *testing.T) {
	f := testFile(t)
	dir := filepath.Dir(f.path)
	stale := filepath.Join(dir, "audit.jsonl.purge-1234567")
	other := filepath.Join(dir, "audit.jsonl.bak")
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("a copy\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Purge(context.Background(), time.Now(), Retention{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the killed purge's copy is still there (%v)", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file of the directory went: %v", err)
	}
}
