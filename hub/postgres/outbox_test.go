package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/sealing"
	"github.com/pophub/pophub/hub/storetest"
	"github.com/pophub/pophub/internal/testenv"
)

// TestOutboxMigration upgrades schemas that still have one outbox row per
// notification, with notifications pending, in clear and sealed: after
// migration 0006 the relay reads every one of them, in their order and
// with their bodies and trace contexts, before those of batches applied
// after the upgrade; a key rotation rewrites the moved rows.
func TestOutboxMigration(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) { testOutboxMigration(t, sealed) })
	}
}

func testOutboxMigration(t *testing.T, sealed bool) {
	ctx := context.Background()
	var mat sealing.Material
	var k *sealing.Keyring
	if sealed {
		mat = storetest.Keys(t)
		k = storetest.Keyring(t, mat)
	}
	schema := testenv.Schema(t)
	conn, err := pgx.Connect(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%.60s: %v", sql, err)
		}
	}
	exec("CREATE SCHEMA " + pgx.Identifier{schema}.Sanitize())
	exec("SET search_path TO " + pgx.Identifier{schema}.Sanitize())
	exec(`CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		version := strings.TrimSuffix(strings.TrimPrefix(f, "migrations/"), ".sql")
		if version >= "0006" {
			break
		}
		sql, err := migrations.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		exec(string(sql))
		exec("INSERT INTO schema_migrations (version) VALUES ($1)", version)
	}

	// 10,005 pending notifications, more than one batch row's worth,
	// written as the old store wrote them.
	const old = 10_005
	body := func(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }
	trace := func(n int) string {
		if n%2 == 1 {
			return ""
		}
		return fmt.Sprintf("00-%032x-%016x-01", n, n)
	}
	rows := make([][]any, old)
	for i := range rows {
		n := i + 1
		id, b := fmt.Sprintf("old-%d", n), body(n)
		if k != nil {
			b = k.Seal(b, []byte(id))
		}
		var tr any
		if trace(n) != "" {
			tr = map[string]string{"traceparent": trace(n)}
		}
		rows[i] = []any{"pop.changed.23.2301.230102.identity", id, b, tr, time.Now()}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"subject", "msg_id", "body", "trace", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, Config{URL: testenv.PostgresURL(), Schema: schema, Keys: k}) // applies 0006
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	defer s.Close()
	var oldTable *string
	var batchRows int
	if err := s.Pool().QueryRow(ctx, "SELECT to_regclass('outbox')::text, (SELECT count(*) FROM outbox_batches)").Scan(&oldTable, &batchRows); err != nil {
		t.Fatal(err)
	}
	if oldTable != nil || batchRows != 2 {
		t.Fatalf("after the migration: old table %v, %d batch rows; want none and 2", oldTable, batchRows)
	}
	storetest.ApplyAll(t, s, storetest.Population(t, 5, 41), 100)
	pending, err := s.PendingOutbox(ctx, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) <= old {
		t.Fatalf("%d pending, want the %d moved and the new batches'", len(pending), old)
	}
	for i, e := range pending[:old] {
		n := i + 1
		if e.MsgID != fmt.Sprintf("old-%d", n) || string(e.Body) != string(body(n)) || e.CreatedAt.IsZero() {
			t.Fatalf("moved entry %d: %s %s %v", i, e.MsgID, e.Body, e.CreatedAt)
		}
		if e.Trace["traceparent"] != trace(n) || (trace(n) == "" && e.Trace != nil) {
			t.Fatalf("moved entry %d: trace %v, want traceparent %q", i, e.Trace, trace(n))
		}
		if i > 0 && e.Seq <= pending[i-1].Seq {
			t.Fatalf("entry %d: seq %d after %d", i, e.Seq, pending[i-1].Seq)
		}
	}
	if pending[old].Seq <= pending[old-1].Seq || strings.HasPrefix(pending[old].MsgID, "old-") {
		t.Fatalf("the first new entry (%s, seq %d) does not follow the moved ones", pending[old].MsgID, pending[old].Seq)
	}
	if st, err := s.Stats(ctx); err != nil || st.OutboxPending != int64(len(pending)) {
		t.Fatalf("Stats.OutboxPending = %d (%v), want %d", st.OutboxPending, err, len(pending))
	}

	if k != nil {
		// A rotation rewrites the moved rows in the current format, sealed
		// with the new key; the relay reads the same notifications.
		if err := mat.AddDataKey(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if s, err = Open(ctx, Config{URL: testenv.PostgresURL(), Schema: schema, Keys: storetest.Keyring(t, mat)}); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Reseal(ctx, 100, nil); err != nil {
			t.Fatal(err)
		}
		if left := oldVersionRows(t, s); left != 0 {
			t.Fatalf("%d values left on the old key or in the old format", left)
		}
		after, err := s.PendingOutbox(ctx, 0, 1_000_000)
		if err != nil || !reflect.DeepEqual(after, pending) {
			t.Fatalf("outbox after resealing differs (%v)", err)
		}
	}

	seqs := make([]int64, len(pending))
	for i, e := range pending {
		seqs[i] = e.Seq
	}
	if err := s.MarkPublished(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePublished(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM outbox_batches").Scan(&batchRows); err != nil || batchRows != 0 {
		t.Fatalf("%d batch rows left after marking everything published and deleting it (%v)", batchRows, err)
	}
}

// TestOutboxListRejectsDamage: a damaged list is an error naming the
// notification, not a panic or a short read.
func TestOutboxListRejectsDamage(t *testing.T) {
	entries := []hub.OutboxEntry{
		{Subject: "pop.death.23.2301.230102", MsgID: "a", Body: []byte(`{"x":1}`), Trace: map[string]string{"traceparent": "t"}},
		{Subject: "pop.changed.23.2301.230102.identity", MsgID: "b", Body: []byte(`{}`)},
	}
	list, err := appendList(nil, entries)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseList(list)
	if err != nil || !reflect.DeepEqual(got, entries) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, cut := range []int{1, 3, 5, len(list) - 1} {
		if _, err := parseList(list[:cut]); err == nil || !strings.Contains(err.Error(), "notification") {
			t.Errorf("list cut at %d: %v, want an error naming the notification", cut, err)
		}
	}
	long := append([]byte{0xff, 0xff, 0xff, 0xf0}, list...)
	if _, err := parseList(long); err == nil {
		t.Error("a length past the end was accepted")
	}
}

// TestOutboxRowReadInParts: a relay reading less than a row per round gets
// the row's entries from the previous round's decoding, and they equal
// what a store reading the row whole returns, body and trace included,
// also after some of them were marked published out of order.
func TestOutboxRowReadInParts(t *testing.T) {
	ctx := context.Background()
	schema := testenv.Schema(t)
	s, whole := openTestStore(t, schema), openTestStore(t, schema)
	for r := range 3 {
		entries := make([]hub.OutboxEntry, 10+r)
		for i := range entries {
			entries[i] = hub.OutboxEntry{Subject: fmt.Sprintf("pop.changed.23.2301.230102.s%d", i), MsgID: fmt.Sprintf("chg-%d-%d", r, i),
				Body: []byte(fmt.Sprintf(`{"row":%d,"i":%d}`, r, i)), Trace: map[string]string{"traceparent": fmt.Sprintf("00-%032x-%016x-01", r+1, i+1)}, CreatedAt: time.Now()}
		}
		if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.writeOutbox(ctx, tx, entries, newWriteID()) }); err != nil {
			t.Fatal(err)
		}
	}
	want, err := whole.PendingOutbox(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 33 {
		t.Fatalf("%d entries written, want 33", len(want))
	}
	// Mark a few out of order; the parts must leave them out.
	marked := map[int64]bool{want[3].Seq: true, want[12].Seq: true, want[13].Seq: true, want[30].Seq: true}
	if err := s.MarkPublished(ctx, slices.Collect(maps.Keys(marked))); err != nil {
		t.Fatal(err)
	}
	var got []hub.OutboxEntry
	after, usedPart := int64(0), false
	for {
		page, err := s.PendingOutbox(ctx, after, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		usedPart = usedPart || s.partRow.Load() != nil
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if !usedPart {
		t.Error("no row was kept between rounds")
	}
	var left []hub.OutboxEntry
	for _, e := range want {
		if !marked[e.Seq] {
			left = append(left, e)
		}
	}
	if !reflect.DeepEqual(got, left) {
		t.Errorf("read in parts:\n%v\nread whole:\n%v", got, left)
	}
}

// BenchmarkOutboxDrain measures what the relay asks of the outbox: rows of
// 3,000 notifications (a batch of 2,000 events), read 2,000 at a time and
// marked published, until none is left.
func BenchmarkOutboxDrain(b *testing.B) {
	const rows, perRow, round = 20, 3000, 2000
	ctx := context.Background()
	s := openTestStore(b, testenv.Schema(b))
	body := []byte(`{"change_id":"` + strings.Repeat("c", 40) + `","citizen_id":"230102199001011234","version":7,"section":"social_insurance","event_id":"social_insurance-` + strings.Repeat("e", 24) + `","event_type":"social_insurance.contribution_recorded","source":"social_insurance","time":"2026-03-01T00:00:00+08:00","applied_at":"2026-12-03T20:00:00.123456Z"}`)
	fill := func() {
		for r := range rows {
			entries := make([]hub.OutboxEntry, perRow)
			for i := range entries {
				entries[i] = hub.OutboxEntry{Subject: "pop.changed.23.2301.230102.social_insurance", MsgID: fmt.Sprintf("chg-%d-%d", r, i), Body: body, CreatedAt: time.Now()}
			}
			err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.writeOutbox(ctx, tx, entries, newWriteID()) })
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	var drained int
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		if err := s.DeletePublished(ctx, 0); err != nil { // as the relay does every second
			b.Fatal(err)
		}
		fill()
		b.StartTimer()
		start := time.Now()
		for {
			entries, err := s.PendingOutbox(ctx, 0, round)
			if err != nil {
				b.Fatal(err)
			}
			if len(entries) == 0 {
				break
			}
			seqs := make([]int64, len(entries))
			for i, e := range entries {
				seqs[i] = e.Seq
			}
			if err := s.MarkPublished(ctx, seqs); err != nil {
				b.Fatal(err)
			}
			drained += len(entries)
		}
		elapsed += time.Since(start)
	}
	if drained != b.N*rows*perRow {
		b.Fatalf("drained %d notifications, want %d", drained, b.N*rows*perRow)
	}
	b.ReportMetric(float64(drained)/elapsed.Seconds(), "notifications/s")
}
