package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// appendAt chains and stores batch after the log's head.
func appendAt(t testing.TB, s Appender, k Key, batch []Entry) {
	t.Helper()
	c := newChainer(k)
	if err := s.Append(context.Background(), batch, func(h Link) Link { return c.link(h, batch) }); err != nil {
		t.Fatal(err)
	}
}

// readAt is a read of people[p] at time at.
func readAt(k Key, at time.Time, p int) Entry {
	return Entry{Time: at, Identity: "si-harbin", Action: ActionReadRecord, Subject: subjectOf(k, p),
		Sections: []string{"identity"}, Purpose: "pension transfer", Status: 200, Result: "ok"}
}

// TestPurgeRedactsExpiredReadsBehindProcessingRecord: README promises
// that `pophub audit purge` keeps reads of citizens 6 months and
// processing records 3 years. A gateway request (publish_events) a year
// old is kept, and before, it held back every read after it for as long
// as itself: 1,000 reads of 7 to 12 months ago stayed, with whom they
// concerned and why. The reads past the floor lose their content (stubs),
// the processing record and the recent reads stay whole, the chain still
// verifies and grows, who-read finds only the kept reads, and an export
// over the stubs verifies.
func TestPurgeRedactsExpiredReadsBehindProcessingRecord(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			now := time.Now().UTC()
			old := now.AddDate(-1, 0, 0)
			batch := []Entry{
				readAt(k, old.Add(-time.Hour), 0), // 1: expired at the start: deleted
				{Time: old, Identity: "housing", Action: "publish_events", Purpose: "registration", Status: 202, Result: "accepted"}, // 2: kept 3 years
			}
			for i := range 1000 { // 3-1002: expired behind 2: redacted
				batch = append(batch, readAt(k, old.Add(time.Duration(i)*4*time.Hour), i%2))
			}
			batch = append(batch,
				Entry{Time: now.AddDate(0, -7, 0), Identity: "x", Action: ActionUnmatched, Status: 404, Result: "not_found"}, // 1003: redacted
				readAt(k, now.AddDate(0, -1, 0), 0), // 1004: kept
				readAt(k, now.AddDate(0, 0, -1), 1), // 1005: kept
			)
			appendAt(t, s, k, batch)

			res, err := s.Purge(ctx, now, Retention{})
			want := PurgeResult{Access: PurgeCount{Deleted: 1, Redacted: 1001}}
			if err != nil || res != want {
				t.Fatalf("purge: %+v, %v; want %+v", res, err, want)
			}
			var reads, kept int
			err = s.Scan(ctx, 0, 0, func(e *Entry) error {
				expired := e.Time.Before(now.AddDate(0, -AccessFloorMonths, 0))
				switch {
				case e.Action.Class() == ClassProcessing:
					if e.Redacted || e.Identity != "housing" || e.Result != "accepted" {
						t.Errorf("the processing record was changed: %+v", e)
					}
				case expired && (!isStub(e) || e.Subject != "" || e.Purpose != ""):
					t.Errorf("entry %d, a read of %s, still holds its content: %+v", e.Seq, e.Time, e)
				case !expired && (e.Redacted || e.Subject == ""):
					t.Errorf("entry %d of %s within the floor was redacted: %+v", e.Seq, e.Time, e)
				case !expired:
					kept++
				}
				if e.Action.Class() == ClassAccess {
					reads++
				}
				return nil
			})
			if err != nil || reads != 1003 || kept != 2 {
				t.Fatalf("scan: %d access entries, %d whole, %v; want 1003 and 2", reads, kept, err)
			}

			rep, err := Verify(ctx, s, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Entries != 1004 || rep.Redacted != 1001 || rep.Anchor.Seq != 1 || rep.Head.Seq != 1005 {
				t.Fatalf("verify after purge: %+v, %v", rep, err)
			}
			if err := CheckKey(ctx, s, k); err != nil {
				t.Fatal(err)
			}
			got, err := s.WhoRead(ctx, subjectOf(k, 0), time.Time{}, now.Add(time.Hour))
			if err != nil || len(got) != 1 || got[0].Seq != 1004 {
				t.Errorf("who-read after purge: %+v, %v; want seq 1004 only", got, err)
			}

			// An export over stubs verifies, and says it holds stubs.
			var archive bytes.Buffer
			m, err := Export(ctx, s, old.Add(-time.Minute), now.Add(time.Hour), &archive, k)
			if err != nil || m.Format != ExportFormatRedacted || m.Count != 1004 {
				t.Fatalf("export: %+v, %v", m, err)
			}
			manifest, sig, pub := signed(t, m)
			if _, rep, err := VerifyExport(manifest, sig, pub, bytes.NewReader(archive.Bytes())); err != nil {
				t.Fatalf("verify export: %v, %v", err, rep.Problems)
			}
			archive.Reset()
			if m, err := Export(ctx, s, now.AddDate(0, -2, 0), now.Add(time.Hour), &archive, k); err != nil || m.Format != ExportFormat {
				t.Errorf("export without stubs: %+v, %v; want format %s", m, err, ExportFormat)
			}

			// The chain goes on; a second purge has nothing to do.
			appendAt(t, s, k, []Entry{readAt(k, now, 0)})
			if rep, err := Verify(ctx, s, VerifyOptions{Key: k}); err != nil || !rep.OK() || rep.Head.Seq != 1006 {
				t.Errorf("verify after append: %+v, %v", rep, err)
			}
			if res, err := s.Purge(ctx, now, Retention{}); err != nil || res != (PurgeResult{}) {
				t.Errorf("second purge: %+v, %v", res, err)
			}
		})
	}
}

// TestPurgeRedactsTheHead: when the newest entry is itself redacted, the
// next entry is chained to the stub's stored hash and the key still
// checks against the head.
func TestPurgeRedactsTheHead(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			now := time.Now().UTC()
			appendAt(t, s, k, []Entry{
				{Time: now.AddDate(0, -9, 0), Identity: "pophub", Action: ActionPolicyChange, Result: "ok", Detail: "{}"},
				readAt(k, now.AddDate(0, -8, 0), 2),
			})
			if res, err := s.Purge(ctx, now, Retention{}); err != nil || res.Access.Redacted != 1 || res.Deleted() != 0 {
				t.Fatalf("purge: %+v, %v", res, err)
			}
			if err := CheckKey(ctx, s, k); err != nil {
				t.Fatalf("the key against a stub head: %v", err)
			}
			if e, ok, err := s.LastPolicyChange(ctx); err != nil || !ok || e.Seq != 1 || e.Detail != "{}" {
				t.Errorf("last policy change: %+v, %v, %v", e, ok, err)
			}
			appendAt(t, s, k, []Entry{readAt(k, now, 2)})
			rep, err := Verify(ctx, s, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Entries != 3 || rep.Redacted != 1 {
				t.Errorf("verify: %+v, %v", rep, err)
			}
		})
	}
}

// TestStubTampering: a stub keeps its links and seal, so emptying a
// recent entry, marking a changed entry redacted, or forging a stub's
// hash is reported; a lawful stub is not.
func TestStubTampering(t *testing.T) {
	now := time.Now().UTC()
	stub := func(e *Entry) { redact(e) }
	tests := []struct {
		name   string
		tamper func(es []Entry)
		kind   Kind // 0: verifies
		seq    int64
	}{
		{"lawful stub", func(es []Entry) { stub(&es[1]) }, 0, 0},
		{"recent entry emptied", func(es []Entry) { stub(&es[3]) }, Changed, 4},
		{"changed entry marked redacted", func(es []Entry) { es[3].Purpose = "curiosity"; es[3].Redacted = true }, Changed, 4},
		{"stub hash forged", func(es []Entry) { stub(&es[1]); es[1].Hash[0] ^= 1 }, Forged, 2},
		{"stub removed", func(es []Entry) { copy(es[1:], es[2:]); es[len(es)-1] = Entry{Seq: -1} }, Removed, 2},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					k := testKey(t)
					s, tam := b.open(t)
					appendAt(t, s, k, []Entry{
						{Time: now.AddDate(0, -9, 0), Identity: "housing", Action: "publish_events", Result: "accepted"},
						readAt(k, now.AddDate(0, -8, 0), 0),
						readAt(k, now.AddDate(0, -7, 0), 1),
						readAt(k, now.AddDate(0, 0, -1), 1),
						readAt(k, now, 0),
					})
					tam.rewrite(t, func(es []Entry) []Entry {
						tc.tamper(es)
						if es[len(es)-1].Seq == -1 {
							es = es[:len(es)-1]
						}
						return es
					})
					rep, err := Verify(context.Background(), s, VerifyOptions{Key: k})
					if err != nil {
						t.Fatal(err)
					}
					switch {
					case tc.kind == 0 && !rep.OK():
						t.Errorf("problems: %v", rep.Problems)
					case tc.kind != 0 && rep.OK():
						t.Errorf("not detected: %+v", rep)
					case tc.kind != 0 && (rep.Problems[0].Kind != tc.kind || rep.Problems[0].Seq != tc.seq):
						t.Errorf("first problem %v; want %v at seq %d", rep.Problems[0], tc.kind, tc.seq)
					}
				})
			}
		})
	}
}

// TestPurgeTrailOfThePreviousRelease: a trail as the previous release
// left it, purged from its start (anchor at seq 2) and, on PostgreSQL,
// without the redacted column, opens and verifies with the tools' opener;
// a purge then redacts the expired reads behind the retained processing
// record, and it still verifies.
func TestPurgeTrailOfThePreviousRelease(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			ctx := context.Background()
			now := time.Now().UTC()
			appendAt(t, s, k, []Entry{
				readAt(k, now.AddDate(-4, 0, 0), 0), // 1, 2: deleted by the old purge
				readAt(k, now.AddDate(-4, 0, 0), 1),
				{Time: now.AddDate(-1, 0, 0), Identity: "housing", Action: "publish_events", Result: "accepted"},
				readAt(k, now.AddDate(0, -8, 0), 0), // 4: expired behind 3
				readAt(k, now.AddDate(0, -1, 0), 1), // 5: kept
			})
			// The previous release's purge: the prefix deleted behind an anchor.
			var reopen func() Store
			switch s := s.(type) {
			case *Postgres:
				err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
					for _, sql := range []string{
						"SELECT set_config('pophub.audit_purge', 'on', true)",
						"INSERT INTO " + s.anch + " (id, seq, at, hash, seal) SELECT 1, seq, at, hash, seal FROM " + s.log + " WHERE seq = 2",
						"DELETE FROM " + s.log + " WHERE seq <= 2",
						"ALTER TABLE " + s.log + " DROP COLUMN redacted",
					} {
						if _, err := tx.Exec(ctx, sql); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				reopen = func() Store {
					p, err := OpenPostgresExisting(ctx, PostgresConfig{Pool: s.pool, Schema: s.schema})
					if err != nil {
						t.Fatal(err)
					}
					return p
				}
			case *File:
				var es []Entry
				if err := s.Scan(ctx, 0, 0, func(e *Entry) error { es = append(es, *e); return nil }); err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				buf.WriteString(`{"anchor":{"seq":2,"time":"` + es[1].Time.Format(time.RFC3339Nano) + `","hash":"` +
					es[1].Hash.String() + `","seal":"` + es[1].Seal.String() + `"}}` + "\n")
				for i := 2; i < len(es); i++ {
					line, _ := jsonLine(&es[i])
					buf.Write(line)
				}
				if err := os.WriteFile(s.Path(), buf.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
				reopen = func() Store {
					f, err := OpenFileExisting(s.Path())
					if err != nil {
						t.Fatal(err)
					}
					return f
				}
			}
			old := reopen()
			defer old.Close()
			rep, err := Verify(ctx, old, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Anchor.Seq != 2 || rep.Entries != 3 {
				t.Fatalf("the previous release's trail: %+v, %v", rep, err)
			}
			res, err := old.Purge(ctx, now, Retention{})
			if err != nil || res != (PurgeResult{Access: PurgeCount{Redacted: 1}}) {
				t.Fatalf("purge: %+v, %v", res, err)
			}
			rep, err = Verify(ctx, old, VerifyOptions{Key: k})
			if err != nil || !rep.OK() || rep.Anchor.Seq != 2 || rep.Entries != 3 || rep.Redacted != 1 {
				t.Fatalf("after the purge: %+v, %v", rep, err)
			}
			if got, err := old.WhoRead(ctx, subjectOf(k, 0), time.Time{}, now.Add(time.Hour)); err != nil || len(got) != 0 {
				t.Errorf("who-read of the redacted read's citizen: %+v, %v", got, err)
			}
		})
	}
}

// signed signs m with a new key: the manifest's bytes, its signature and
// the public key.
func signed(t testing.TB, m Manifest) (manifest, sig []byte, pub ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	manifest, sig, err = m.Sign(priv)
	if err != nil {
		t.Fatal(err)
	}
	return manifest, sig, pub
}

// TestTriggerAllowsOnlyRedaction: under the purge flag an UPDATE may
// only empty an entry past its floor to a stub; any other change, or the
// redaction of a recent entry, is refused by the database.
func TestTriggerAllowsOnlyRedaction(t *testing.T) {
	p := testPostgres(t)
	k := testKey(t)
	ctx := context.Background()
	now := time.Now().UTC()
	appendAt(t, p, k, []Entry{readAt(k, now.AddDate(0, -8, 0), 0), readAt(k, now, 0)})
	redactSQL := "UPDATE " + p.log + " SET identity = '', subject = '', sections = '{}', purpose = '', status = 0, result = '', detail = '', redacted = true"
	for _, tc := range []struct {
		sql, refusal string
	}{
		{redactSQL + " WHERE seq = 2", "legal retention floor"},
		{"UPDATE " + p.log + " SET purpose = 'x' WHERE seq = 1", "may only redact"},
		{redactSQL + ", at = at - interval '1 day' WHERE seq = 1", "may only redact"},
		{redactSQL + ", hash = '\\x00' WHERE seq = 1", "may only redact"},
	} {
		_, err := p.pool.Exec(ctx, "BEGIN; SELECT set_config('pophub.audit_purge', 'on', true); "+tc.sql+"; COMMIT")
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.refusal)) {
			t.Errorf("%s: %v, want refused (%s)", tc.sql, err, tc.refusal)
		}
		p.pool.Exec(ctx, "ROLLBACK")
	}
	if _, err := p.pool.Exec(ctx, "BEGIN; SELECT set_config('pophub.audit_purge', 'on', true); "+redactSQL+" WHERE seq = 1; COMMIT"); err != nil {
		t.Fatalf("redaction of an expired entry: %v", err)
	}
	if rep, err := Verify(ctx, p, VerifyOptions{Key: k}); err != nil || !rep.OK() || rep.Redacted != 1 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

// TestPurgeKeepsSixMonthsAtMonthEnd: on 31 August a read of 2 March is
// not yet six months old (six months before 31 August is 28 February),
// and a purge that day keeps it whole, on both stores.
func TestPurgeKeepsSixMonthsAtMonthEnd(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			k := testKey(t)
			s, _ := b.open(t)
			now := time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC)
			appendAt(t, s, k, []Entry{readAt(k, time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), 0)})
			res, err := s.Purge(context.Background(), now, Retention{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Redacted() != 0 || res.Deleted() != 0 {
				t.Errorf("purge on %s removed a read of 2026-03-02, within its six-month floor: %+v", now.Format(time.DateOnly), res)
			}
		})
	}
}

// TestRetentionFloorAgreesWithTrigger: the purge and the PostgreSQL
// trigger that guards the log count months alike, in China's time and
// whatever the session's time zone, at month ends and leap days: a purge
// the trigger refuses fails whole.
func TestRetentionFloorAgreesWithTrigger(t *testing.T) {
	p := testPostgres(t)
	ctx := context.Background()
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, zone := range []string{"UTC", "America/New_York", "Asia/Shanghai"} {
		if _, err := conn.Exec(ctx, "SET TIME ZONE '"+zone+"'"); err != nil {
			t.Fatal(err)
		}
		for _, now := range []time.Time{
			time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC),
			time.Date(2026, 8, 31, 20, 0, 0, 0, time.UTC), // 1 September in China
			time.Date(2026, 8, 30, 20, 0, 0, 0, time.UTC),
			time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
			time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 31, 16, 30, 0, 0, time.UTC),
		} {
			for _, months := range []int{AccessFloorMonths, ProcessingFloorMonths} {
				var db time.Time
				if err := conn.QueryRow(ctx, "SELECT "+pgx.Identifier{p.schema}.Sanitize()+".audit_floor($1, $2)", now, months).Scan(&db); err != nil {
					t.Fatal(err)
				}
				if got := monthsBefore(now, months); !got.Equal(db) {
					t.Errorf("TimeZone %s: %d months before %s: purge %s, trigger %s", zone, months, now.Format(time.RFC3339), got.Format(time.RFC3339), db.Format(time.RFC3339))
				}
			}
		}
	}
}
