package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestCrashCDC kills `pophub cdc` with SIGKILL at random moments, first
// while it copies a table's existing rows, then while it streams the
// changes a writer keeps committing, and restarts it each time. What a
// department relies on: every row copied and every change committed once
// the copy finished reaches the topic, each under one event id (a row or
// change sent again after a kill keeps its id, so the hub drops the copy),
// and nothing that was not made; each lease's last event agrees with the
// table. (Changes committed before a copy completes are folded into the
// copy by design; here none are.)
func TestCrashCDC(t *testing.T) {
	bin := buildBinary(t)
	ctx := context.Background()
	broker := testenv.KafkaProcess(t, faultPartitions)
	db, table, slot, publication := cdcRentals(t)
	const initial = 10_000
	// Tenants' IDs, computed here: the writer's goroutine must not fail the test.
	tenants := make([]string, 20_000)
	for i := range tenants {
		tenants[i] = string(personID(t, i))
	}
	w := &rentalsWriter{db: db, table: table, next: initial + 1, want: map[string]bool{},
		tenant: func(lease int) string { return tenants[lease%len(tenants)] }}
	rows := make([][]any, initial)
	for i := range rows {
		rows[i] = []any{int64(i + 1), w.tenant(i + 1), "230102001001", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
		w.want[rentalChange("housing.rental_registered", i+1, nil)] = true
	}
	if _, err := db.CopyFrom(ctx, pgx.Identifier(strings.Split(table, ".")), []string{"lease_id", "tenant_id", "address_code", "start_date"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	args := []string{"cdc", "--source", "housing", "--postgres", testenv.PostgresURL(), "--table", table,
		"--slot", slot, "--publication", publication, "--mapping", filepath.Join("..", "..", "adapters", "cdc", "examples", "rentals.yaml"),
		"--kafka", broker, "--log-level", "info"}
	topic := schemas.Topic(schemas.Housing)
	progress := func() int64 { return testenv.RecordCount(t, broker, topic) }
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	// Kills during the copy of the existing rows (one at start-up).
	for kill := 0; kill < 2; kill++ {
		c := startChild(t, bin, args...)
		when, killed := killAtRandom(t, r, c, kill, initial, progress)
		if !killed {
			_, err := c.exited()
			t.Fatalf("copy kill %d: pophub cdc ended by itself (%v); its log:\n%s", kill, err, c.output())
		}
		t.Logf("copy kill %d %s; %d records on the topic", kill, when, progress())
	}
	c := startChild(t, bin, args...)
	waitForChild(t, c, 2*time.Minute, "the copy finished and streaming started", func() bool {
		return strings.Contains(c.output(), "cdc: streaming")
	})
	t.Logf("copy finished: %d records on the topic", progress())

	// Kills while a writer commits inserts, updates and deletes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.run(ctx, stop, initial); err != nil {
			t.Errorf("writing to the table: %v", err)
		}
	}()
	for kill := 0; kill < 3; kill++ {
		if kill > 0 {
			c = startChild(t, bin, args...)
		}
		d := time.Duration(r.IntN(2000)) * time.Millisecond
		time.Sleep(d)
		if done, err := c.exited(); done {
			t.Fatalf("stream kill %d: pophub cdc ended by itself (%v); its log:\n%s", kill, err, c.output())
		}
		c.kill()
		t.Logf("stream kill %d %v after the start; %d records on the topic", kill, d, progress())
	}
	close(stop)
	wg.Wait()
	// A last insert marks the end: once it is on the topic, so is every
	// change committed before it.
	marker := w.next
	if err := w.commit(ctx, func(tx pgx.Tx) error { return w.insert(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
	c = startChild(t, bin, args...)
	waitForChild(t, c, 2*time.Minute, "the last change on the topic", func() bool {
		for _, ev := range cdcRecords(t, broker) {
			if fmt.Sprint(ev.Data["lease_id"]) == fmt.Sprint(marker) {
				return true
			}
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	if err := c.stop(); err != nil {
		t.Fatalf("pophub cdc did not stop cleanly: %v; its log:\n%s", err, c.output())
	}

	evs := cdcRecords(t, broker)
	checkFinalLeases(t, db, table, evs)
	ids := map[string]map[string]bool{} // change → event ids
	for _, ev := range evs {
		s := rentalChange(ev.Type, ev.Data["lease_id"], ev.Data["end"])
		if ids[s] == nil {
			ids[s] = map[string]bool{}
		}
		ids[s][ev.ID] = true
	}
	var missing, twice, stray []string
	for s := range w.want {
		switch n := len(ids[s]); {
		case n == 0:
			missing = append(missing, s)
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s (%d ids)", s, n))
		}
	}
	for s := range ids {
		if !w.want[s] {
			stray = append(stray, s)
		}
	}
	t.Logf("%d rows copied and changes made while streaming, %d distinct changes on the topic", len(w.want), len(ids))
	if len(missing)+len(twice)+len(stray) > 0 {
		t.Errorf("%d changes missing (%s), %d under more than one event id (%s), %d not made (%s)",
			len(missing), firstFew(missing), len(twice), firstFew(twice), len(stray), firstFew(stray))
	}
}

// cdcRentals creates the rentals table of adapters/cdc/examples/rentals.yaml
// in a schema of the test's own in the test database, which must run with
// wal_level=logical, and names a slot and a publication for it; the slot
// and publication are dropped when the test ends, then the schema.
func cdcRentals(t testing.TB) (db *pgx.Conn, table, slot, publication string) {
	t.Helper()
	ctx := context.Background()
	url := testenv.LogicalReplication(t)
	schema := testenv.Schema(t)
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	table, slot, publication = schema+".rentals", schema+"_slot", schema+"_pub"
	if _, err := db.Exec(ctx, `CREATE SCHEMA `+schema+`;
		CREATE TABLE `+table+` (lease_id bigint PRIMARY KEY, tenant_id char(18) NOT NULL, address_code text NOT NULL,
			start_date date NOT NULL, end_date date, signed_at timestamptz NOT NULL DEFAULT now());
		ALTER TABLE `+table+` REPLICA IDENTITY FULL`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.DropReplicationSlot(t, slot)
		// A connection of its own: the test's may be in use or closed.
		admin, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("dropping publication %s: %v", publication, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP PUBLICATION IF EXISTS "+publication); err != nil {
			t.Errorf("dropping publication %s: %v", publication, err)
		}
	})
	return db, table, slot, publication
}

// rentalsWriter commits transactions of 1–20 inserts, updates and deletes
// of leases and notes each change it committed as rentalChange spells it.
type rentalsWriter struct {
	db    *pgx.Conn
	table string
	next  int   // the next lease id to insert
	ended []int // leases with an end date, which it may delete
	day   int
	want  map[string]bool
	// tenant is a lease's tenant's citizen ID.
	tenant func(lease int) string
	// changes of the transaction under way
	changes  []string
	newEnded []int
}

func (w *rentalsWriter) run(ctx context.Context, stop <-chan struct{}, leases int) error {
	r := rand.New(rand.NewPCG(5, 6))
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		err := w.commit(ctx, func(tx pgx.Tx) error {
			for range 1 + r.IntN(20) {
				var err error
				switch r.IntN(3) {
				case 0:
					err = w.insert(ctx, tx)
				case 1:
					err = w.setEnd(ctx, tx, 1+r.IntN(leases))
				case 2:
					err = w.delete(ctx, tx, r)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
	}
}

// commit runs change in a transaction and notes its changes once committed.
func (w *rentalsWriter) commit(ctx context.Context, change func(pgx.Tx) error) error {
	w.changes, w.newEnded = w.changes[:0], w.newEnded[:0]
	tx, err := w.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := change(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for _, s := range w.changes {
		w.want[s] = true
	}
	w.ended = append(w.ended, w.newEnded...)
	return nil
}

func (w *rentalsWriter) insert(ctx context.Context, tx pgx.Tx) error {
	id := w.next
	w.next++
	_, err := tx.Exec(ctx, "INSERT INTO "+w.table+" (lease_id, tenant_id, address_code, start_date) VALUES ($1, $2, '230102001001', '2025-02-01')",
		id, w.tenant(id))
	w.changes = append(w.changes, rentalChange("housing.rental_registered", id, nil))
	return err
}

func (w *rentalsWriter) setEnd(ctx context.Context, tx pgx.Tx, id int) error {
	w.day++
	end := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, w.day).Format(time.DateOnly)
	tag, err := tx.Exec(ctx, "UPDATE "+w.table+" SET end_date = $2 WHERE lease_id = $1", id, end)
	if err == nil && tag.RowsAffected() == 1 {
		w.changes = append(w.changes, rentalChange("housing.rental_registered", id, end))
		w.newEnded = append(w.newEnded, id)
	}
	return err
}

// delete deletes a lease that has an end date, if there is one.
func (w *rentalsWriter) delete(ctx context.Context, tx pgx.Tx, r *rand.Rand) error {
	if len(w.ended) == 0 {
		return nil
	}
	i := r.IntN(len(w.ended))
	id := w.ended[i]
	w.ended = slices.Delete(w.ended, i, i+1)
	var end time.Time
	err := tx.QueryRow(ctx, "DELETE FROM "+w.table+" WHERE lease_id = $1 RETURNING end_date", id).Scan(&end)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // deleted already
	}
	w.changes = append(w.changes, rentalChange("housing.rental_ended", id, end.Format(time.DateOnly)))
	return err
}

// rentalChange spells a lease's event: its type, lease and end date.
func rentalChange(typ string, lease, end any) string {
	if end == nil {
		end = ""
	}
	return fmt.Sprintf("%s %v end=%v", typ, lease, end)
}

// firstFew lists the first five of s.
func firstFew(s []string) string {
	slices.Sort(s)
	if len(s) > 5 {
		return strings.Join(s[:5], "; ") + "; …"
	}
	return strings.Join(s, "; ")
}

// checkFinalLeases compares each lease's last event on the topic (by
// event time, as the hub orders them) with the table: a row still there is
// registered with its end date, a deleted one ended.
func checkFinalLeases(t testing.TB, db *pgx.Conn, table string, evs []cdcEvent) {
	t.Helper()
	ctx := context.Background()
	want := map[string]string{}
	rows, err := db.Query(ctx, "SELECT lease_id::text, coalesce(end_date::text, '') FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, end string
		if err := rows.Scan(&id, &end); err != nil {
			t.Fatal(err)
		}
		want[id] = rentalChange("housing.rental_registered", id, end)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	last := map[string]cdcEvent{}
	for _, ev := range evs {
		id := fmt.Sprint(ev.Data["lease_id"])
		if l, ok := last[id]; !ok || ev.Time.After(l.Time) || (ev.Time.Equal(l.Time) && ev.ID > l.ID) {
			last[id] = ev
		}
	}
	var wrong []string
	for id, ev := range last {
		got := rentalChange(ev.Type, id, ev.Data["end"])
		w, ok := want[id]
		switch {
		case !ok && ev.Type != "housing.rental_ended":
			wrong = append(wrong, fmt.Sprintf("lease %s deleted, last event %s at %s", id, got, ev.Time))
		case ok && got != w:
			wrong = append(wrong, fmt.Sprintf("lease %s: table %s, last event %s at %s", id, w, got, ev.Time))
		}
	}
	for id, w := range want {
		if _, ok := last[id]; !ok {
			wrong = append(wrong, fmt.Sprintf("lease %s (%s): no event", id, w))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d leases whose last event disagrees with the table: %s", len(wrong), firstFew(wrong))
	} else {
		t.Logf("%d leases: the last event of each agrees with the table", len(last))
	}
}

// cdcEvent is what the checks need of a lease's event.
type cdcEvent struct {
	Time time.Time
	ID   string
	Type string
	Data map[string]any
}

// cdcRecords decodes the housing topic's records.
func cdcRecords(t testing.TB, broker string) []cdcEvent {
	t.Helper()
	var out []cdcEvent
	for _, rec := range testenv.Records(t, broker, schemas.Topic(schemas.Housing)) {
		ev, err := schemas.Decode(schemas.Input{Topic: rec.Topic, Key: rec.Key, Value: rec.Value})
		if err != nil {
			t.Fatalf("a record on the topic does not decode: %v", err)
		}
		var data map[string]any
		d := json.NewDecoder(bytes.NewReader(ev.Data))
		d.UseNumber() // lease ids as the table spells them
		if err := d.Decode(&data); err != nil {
			t.Fatal(err)
		}
		out = append(out, cdcEvent{Time: ev.Time, ID: ev.ID, Type: string(ev.Type), Data: data})
	}
	return out
}
