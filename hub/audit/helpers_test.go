package audit

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas/citizenid"
)

// testPostgres opens a Postgres store on a schema of its own, dropped
// when the test ends.
func testPostgres(t testing.TB) *Postgres {
	t.Helper()
	p, err := OpenPostgres(context.Background(), PostgresConfig{URL: testenv.PostgresURL(), Schema: testenv.Schema(t),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func testFile(t testing.TB) *File {
	t.Helper()
	f, err := OpenFile(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// tamperer changes a store behind its back, as an attacker with write
// access to the table or file would.
type tamperer interface {
	// exec runs fn on the entries in stored order and writes back what it
	// returns (the whole log is rewritten).
	rewrite(t testing.TB, fn func([]Entry) []Entry)
}

// backend is one store under test with its tamperer.
type backend struct {
	name string
	open func(t testing.TB) (Store, tamperer)
}

var backends = []backend{
	{"postgres", func(t testing.TB) (Store, tamperer) { p := testPostgres(t); return p, pgTamper{p} }},
	{"file", func(t testing.TB) (Store, tamperer) { f := testFile(t); return f, fileTamper{f} }},
}

type pgTamper struct{ p *Postgres }

// rewrite deletes every row and inserts fn's result, with the triggers
// bypassed as a superuser can (session_replication_role = replica).
func (x pgTamper) rewrite(t testing.TB, fn func([]Entry) []Entry) {
	t.Helper()
	ctx := context.Background()
	var all []Entry
	if err := x.p.Scan(ctx, 0, 0, func(e *Entry) error { all = append(all, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	all = fn(all)
	err := pgx.BeginFunc(ctx, x.p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM "+x.p.log); err != nil {
			return err
		}
		for _, e := range all {
			if _, err := tx.Exec(ctx, "INSERT INTO "+x.p.log+" ("+strings.Join(logColumns, ", ")+", redacted) "+
				"VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
				e.Seq, e.Time, e.Identity, string(e.Action), e.Subject, append([]string{}, e.Sections...), e.Purpose,
				e.Status, e.Result, e.Detail, e.Prev[:], e.Hash[:], e.Seal[:], e.Redacted); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tampering: %v", err)
	}
}

type fileTamper struct{ f *File }

func (x fileTamper) rewrite(t testing.TB, fn func([]Entry) []Entry) {
	t.Helper()
	ctx := context.Background()
	var all []Entry
	if err := x.f.Scan(ctx, 0, 0, func(e *Entry) error { all = append(all, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	all = fn(all)
	x.f.mu.Lock()
	defer x.f.mu.Unlock()
	var buf bytes.Buffer
	for i := range all {
		b, err := jsonLine(&all[i])
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	if err := x.f.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := x.f.f.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	x.f.size = int64(buf.Len())
}

// testKey is a fixed audit key.
func testKey(t testing.TB) Key {
	t.Helper()
	k, err := ParseKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// people are valid citizen IDs for tests.
var people = []citizenid.ID{"230102199001011230", "11010519491231002X", "440524188001010014", "33060219850715231X"}

// sample returns the i-th synthetic entry at base + i seconds.
func sample(k Key, base time.Time, i int) Entry {
	actions := []Action{ActionReadRecord, ActionReadHistory, ActionStatsPull, ActionReadRecord, ActionPolicyChange}
	e := Entry{
		Time:     base.Add(time.Duration(i) * time.Second),
		Identity: "dept-" + strconv.Itoa(i%7),
		Action:   actions[i%len(actions)],
		Purpose:  "social insurance transfer",
		Status:   200,
		Result:   "ok",
	}
	switch e.Action {
	case ActionReadRecord, ActionReadHistory:
		e.Subject = subjectOf(k, i%len(people))
		e.Sections = []string{"identity", "hukou"}
	case ActionPolicyChange:
		e.Detail = "grant social_insurance: +employment"
	}
	return e
}

var subjects sync.Map // [2]any{Key.seal string, i} → subject

// subjectOf is k.Subject(people[i]), remembered.
func subjectOf(k Key, i int) string {
	key := [2]any{string(k.seal), i}
	if s, ok := subjects.Load(key); ok {
		return s.(string)
	}
	s := k.Subject(people[i])
	subjects.Store(key, s)
	return s
}

// fill appends n sample entries directly (no Log), in batches.
func fill(t testing.TB, s Appender, k Key, base time.Time, n, batch int) {
	t.Helper()
	c := newChainer(k)
	for i := 0; i < n; i += batch {
		b := make([]Entry, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			b = append(b, sample(k, base, j))
		}
		if err := s.Append(context.Background(), b, func(h Link) Link { return c.link(h, b) }); err != nil {
			t.Fatalf("appending: %v", err)
		}
	}
}
