package cdc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pophub/pophub/adapters/publisher"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// failCopyAfter publishes the first n batches of the initial copy for
// real and fails the rest, as a broker that became unreachable during the
// copy would; the ends a start sends before its copy go through.
type failCopyAfter struct {
	p      Publisher
	n      int32
	copied atomic.Int32
}

func (f *failCopyAfter) Publish(ctx context.Context, evs ...schemas.Event) ([]publisher.Result, error) {
	if len(evs) > 0 && evs[0].Type == schemas.RentalRegistered && f.copied.Add(1) > f.n {
		return nil, errors.New("injected: broker unreachable")
	}
	return f.p.Publish(ctx, evs...)
}

// holding is a lease held by a tenant (citizen number), as the hub sees
// it: a person's record holds their leases by id.
type holding struct {
	lease  string
	tenant int
}

func (h holding) String() string { return fmt.Sprintf("lease %s of tenant %d", h.lease, h.tenant) }

func tenantOf(ev schemas.Event) int {
	for n := range 1000 {
		if citizen(n) == string(ev.Subject) {
			return n
		}
	}
	return -1
}

// hubView is what the hub makes of the events: a lease is held when it
// was registered, and not ended after it was (the hub merges by event
// time, not by arrival).
func hubView(evs []schemas.Event) map[holding]bool {
	registered, ended := map[holding]time.Time{}, map[holding]time.Time{}
	for _, ev := range evs {
		switch d := ev.Payload.(type) {
		case *schemas.RentalRegisteredData:
			h := holding{d.LeaseID, tenantOf(ev)}
			if at, ok := registered[h]; !ok || ev.Time.After(at) {
				registered[h] = ev.Time
			}
		case *schemas.RentalEndedData:
			h := holding{d.LeaseID, tenantOf(ev)}
			if at, ok := ended[h]; !ok || ev.Time.After(at) {
				ended[h] = ev.Time
			}
		}
	}
	held := map[holding]bool{}
	for h, at := range registered {
		if end, ok := ended[h]; !ok || end.Before(at) {
			held[h] = true
		}
	}
	return held
}

// tableView is what the department's table holds.
func tableView(t testing.TB, db *pgx.Conn, table string) map[holding]bool {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT lease_id::text, tenant_id FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	held := map[holding]bool{}
	for rows.Next() {
		var lease, tenant string
		if err := rows.Scan(&lease, &tenant); err != nil {
			t.Fatal(err)
		}
		n := -1
		for i := range 1000 {
			if citizen(i) == tenant {
				n = i
			}
		}
		held[holding{lease, n}] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return held
}

// inCopyOrder sorts leases as the initial copy reads them.
func inCopyOrder(leases []string) []string {
	slices.SortFunc(leases, func(a, b string) int {
		oa, ob := copyOrder(a), copyOrder(b)
		switch {
		case oa < ob:
			return -1
		case oa > ob:
			return 1
		}
		return 0
	})
	return leases
}

// registeredLeases lists the leases registered on the topic.
func registeredLeases(evs []schemas.Event) map[string]bool {
	out := map[string]bool{}
	for _, ev := range evs {
		if d, ok := ev.Payload.(*schemas.RentalRegisteredData); ok {
			out[d.LeaseID] = true
		}
	}
	return out
}

// TestInterruptedCopyEndsWhatItSent: a first start whose initial copy
// fails part-way has sent some rows, which the hub applied. Rows it sent
// that were deleted while it was down, or moved to another tenant or
// lease id, must be ended for the hub when the copy is taken again
// (their changes are in no copy), and rows the copy registers again as
// they were (moved back, or deleted and inserted again) must not be
// ended. Rows it never sent owe nothing. In the end the hub holds exactly
// what the table holds, and the stream goes on from there.
func TestInterruptedCopyEndsWhatItSent(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fails gives, for each start that fails, the batches its copy
		// gets through; the start after them succeeds.
		fails []int32
	}{
		{name: "the copy fails part-way", fails: []int32{5}},
		{name: "the copy taken again fails too", fails: []int32{5, 9}},
		{name: "the broker refuses the first batch", fails: []int32{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := connect(t)
			table := rentalsTable(t, db)
			var leases []string
			for lease := 1; lease <= 16; lease++ {
				insertLease(t, db, table, lease, citizen(lease))
				leases = append(leases, strconv.Itoa(lease))
			}
			addr := testenv.Kafka(t, partitions)
			pub := newPublisher(t, addr)
			order := inCopyOrder(leases)
			// Never sent by any copy: the last rows in copy order that
			// the first copy did not send, deleted while down. No event
			// may name them.
			var neverSent []string

			sentBefore := map[string]bool{}
			for i, batches := range tc.fails {
				m := exampleMapping(t)
				m.Table = table
				s, err := New(Config{Source: schemas.Housing, Postgres: testenv.PostgresURL(), Table: table, Mapping: m,
					Publisher: &failCopyAfter{p: pub, n: batches}, BatchSize: 1, FlushInterval: 5 * time.Millisecond,
					StatusInterval: time.Second, Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err = s.Run(ctx)
				cancel()
				if err == nil || !strings.Contains(err.Error(), "injected") {
					t.Fatalf("start %d: Run: %v, want the injected failure", i+1, err)
				}
				sent := registeredLeases(records(t, addr))
				first := order[:batches]
				if i == 0 && (len(sent) != len(first) || slices.ContainsFunc(first, func(l string) bool { return !sent[l] })) {
					t.Errorf("start %d: leases %v registered; want the first %d in copy order, %v", i+1, slices.Sorted(maps.Keys(sent)), batches, first)
				}
				if i == 0 {
					for _, l := range slices.Backward(order) {
						if !sent[l] && len(neverSent) < 2 {
							neverSent = append(neverSent, l)
						}
					}
				}
				var newly []string // sent by this start's copy alone, in copy order
				for _, l := range inCopyOrder(slices.Collect(maps.Keys(sent))) {
					if !sentBefore[l] && !slices.Contains(neverSent, l) {
						newly = append(newly, l)
					}
				}
				// While down: the department changes rows.
				switch i {
				case 0:
					if batches == 0 {
						break
					}
					if len(newly) < 5 {
						t.Fatalf("start %d sent %v, want 5 rows", i+1, newly)
					}
					exec(t, db, "DELETE FROM "+table+" WHERE lease_id = $1", newly[0])
					exec(t, db, "UPDATE "+table+" SET tenant_id = $1 WHERE lease_id = $2", citizen(100+atoi(t, newly[1])), newly[1])
					// Moved and moved back: the copy registers it as the hub has it.
					exec(t, db, "UPDATE "+table+" SET tenant_id = $1 WHERE lease_id = $2", citizen(200+atoi(t, newly[2])), newly[2])
					exec(t, db, "UPDATE "+table+" SET tenant_id = $1 WHERE lease_id = $2", citizen(atoi(t, newly[2])), newly[2])
					// Deleted and inserted again, as some applications update.
					exec(t, db, "DELETE FROM "+table+" WHERE lease_id = $1", newly[3])
					insertLease(t, db, table, atoi(t, newly[3]), citizen(atoi(t, newly[3])))
					exec(t, db, "UPDATE "+table+" SET lease_id = lease_id + 100 WHERE lease_id = $1", newly[4])
					insertLease(t, db, table, 50, citizen(50))
				default:
					// Rows only this copy sent owe their ends too.
					if len(newly) < 2 {
						t.Fatalf("start %d sent no rows the copy before it had not: %v", i+1, newly)
					}
					exec(t, db, "DELETE FROM "+table+" WHERE lease_id = $1", newly[0])
					exec(t, db, "UPDATE "+table+" SET tenant_id = $1 WHERE lease_id = $2", citizen(300+atoi(t, newly[1])), newly[1])
				}
				exec(t, db, "DELETE FROM "+table+" WHERE lease_id = $1", neverSent[i%2])
				for l := range sent {
					sentBefore[l] = true
				}
			}

			s := newStream(t, table, pub, exampleMapping(t))
			r := start(t, s)
			waitFor(t, r, "streaming", func() bool { return strings.Contains(logsOf(t), `msg="cdc: streaming"`) })
			if !strings.Contains(logsOf(t), "initial snapshot did not complete") {
				t.Fatal("the start after the failed ones did not take the copy again")
			}
			// Streaming: changes that end a holding are sent as such.
			before := s.Stats().Published
			var moved, deleted string
			for _, l := range order {
				if tableView(t, db, table)[holding{l, atoi(t, l)}] {
					if moved == "" {
						moved = l
					} else if deleted == "" {
						deleted = l
					}
				}
			}
			exec(t, db, "UPDATE "+table+" SET tenant_id = $1 WHERE lease_id = $2", citizen(400+atoi(t, moved)), moved)
			exec(t, db, "DELETE FROM "+table+" WHERE lease_id = $1", deleted)
			last := walPosition(t, db)
			insertLease(t, db, table, 60, citizen(60))
			waitFor(t, r, "the changes", func() bool { return s.Stats().Confirmed > last })
			r.stop(t)
			if n := s.Stats().Published - before; n != 4 {
				t.Errorf("streaming published %d events, want 4: a move (its end, its registration), a delete and an insert", n)
			}

			evs := records(t, addr)
			got, want := hubView(evs), tableView(t, db, table)
			for h := range want {
				if !got[h] {
					t.Errorf("the table holds %s; the hub does not", h)
				}
			}
			for h := range got {
				if !want[h] {
					t.Errorf("the hub holds %s; the table does not", h)
				}
			}
			ended := map[string]int{}
			for _, ev := range evs {
				if d, ok := ev.Payload.(*schemas.RentalEndedData); ok {
					if slices.Contains(neverSent, d.LeaseID) {
						t.Errorf("lease %s, never sent, was ended", d.LeaseID)
					}
					ended[ev.ID]++
				}
			}
			for id, n := range ended {
				if n > 1 {
					t.Errorf("end %s sent %d times: a start sent again ends confirmed before it", id, n)
				}
			}
			if t.Failed() {
				t.Logf("copy order %v; events:\n%s", order, strings.Join(summaries(t, evs), "\n"))
			}
		})
	}
}

// walPosition is the server's WAL position: a transaction committed after
// it ends past it.
func walPosition(t testing.TB, db *pgx.Conn) pglogrepl.LSN {
	t.Helper()
	var pos string
	if err := db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(pos)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMovedRowEndsWhereItWas: an update that moves a row to another
// tenant or lease id registers it where it is now and ends it where it
// was, under an event id of its own; an update that moves nothing ends
// nothing.
func TestMovedRowEndsWhereItWas(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	for lease := 1; lease <= 3; lease++ {
		insertLease(t, db, table, lease, citizen(lease))
	}
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the snapshot", func() bool { return s.Stats().Published == 3 })
	exec(t, db, "UPDATE "+table+" SET tenant_id = $1 WHERE lease_id = 1", citizen(11))
	exec(t, db, "UPDATE "+table+" SET lease_id = 20 WHERE lease_id = 2")
	last := walPosition(t, db)
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_id = 3")
	waitFor(t, r, "the changes", func() bool { return s.Stats().Confirmed > last })
	r.stop(t)

	evs := records(t, addr)
	want := sorted(
		"housing.rental_registered 1 1 end=", "housing.rental_registered 2 2 end=", "housing.rental_registered 3 3 end=",
		"housing.rental_registered 1 11 end=", "housing.rental_ended 1 1 end="+today(),
		"housing.rental_registered 20 2 end=", "housing.rental_ended 2 2 end="+today(),
		"housing.rental_registered 3 3 end=2026-06-30",
	)
	if got := summaries(t, evs); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	assertOnce(t, evs)
	got, held := hubView(evs), tableView(t, db, table)
	if !maps.Equal(got, held) {
		t.Errorf("the hub holds %v; the table %v", got, held)
	}
}

// TestCopyStateOf reads the slot's entry among the publication comment's.
func TestCopyStateOf(t *testing.T) {
	const slot = "pophub_housing_rentals"
	for _, tc := range []struct {
		name    string
		entries []string
		want    copyState
	}{
		{"no entry: an earlier version's failed copy", nil, copyState{sent: allSent}},
		{"another slot's entries only", []string{"pophub_tax_rentals", "pophub_tax_rentals_x=copying,none"}, copyState{sent: allSent}},
		{"completed", []string{"pophub_tax_rentals", slot}, copyState{done: true}},
		{"completed, of a table", []string{"pophub_tax_rentals=done,7", slot + "=done,16385"}, copyState{done: true, oid: 16385}},
		{"completed, of a malformed table", []string{slot + "=done,x"}, copyState{sent: allSent}},
		{"completed, of table 0", []string{slot + "=done,0"}, copyState{sent: allSent}},
		{"copying, nothing sent", []string{slot + "=copying,none"}, copyState{}},
		{"copying, some sent", []string{slot + "=copying,00000000000000ff"}, copyState{sent: sentBound{any: true, max: 255}}},
		{"malformed bound", []string{slot + "=copying,ff"}, copyState{sent: allSent}},
		{"unknown state", []string{slot + "=resting,none"}, copyState{sent: allSent}},
		{"a slot whose name starts the same", []string{slot + "_2", slot + "_2=copying,none"}, copyState{sent: allSent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := copyStateOf(tc.entries, slot)
			if got != tc.want {
				t.Errorf("copyStateOf(%q) = %+v, want %+v", tc.entries, got, tc.want)
			}
			if tc.want.done || tc.want.sent != allSent {
				if back := copyStateOf([]string{got.entry(slot)}, slot); back != got {
					t.Errorf("entry %q reads back as %+v", got.entry(slot), back)
				}
			}
		})
	}
}

// TestSentBound: a bound holds every row it was widened to, and none
// past it.
func TestSentBound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		orders []uint64
		in     []uint64
		out    []uint64
	}{
		{"nothing sent", nil, nil, []uint64{0, math.MaxUint64}},
		{"rows in order", []uint64{3, 7}, []uint64{0, 3, 5, 7}, []uint64{8, math.MaxUint64}},
		{"rows out of order", []uint64{7, 3}, []uint64{3, 7}, []uint64{8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b sentBound
			for _, o := range tc.orders {
				b = b.with(o)
			}
			for _, o := range tc.in {
				if !b.covers(o) {
					t.Errorf("bound %s does not cover %d", b, o)
				}
			}
			for _, o := range tc.out {
				if b.covers(o) {
					t.Errorf("bound %s covers %d", b, o)
				}
			}
			if back, err := parseSentBound(b.String()); err != nil || back != b {
				t.Errorf("bound %s reads back as %+v, %v", b, back, err)
			}
		})
	}
}

// TestCopyOrderAgreesWithSQL: PostgreSQL sorts the copy as copyOrder
// does, for keys of several columns and types, so that the bound a
// failed copy records is tight.
func TestCopyOrderAgreesWithSQL(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	for lease := 1; lease <= 50; lease++ {
		exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date) VALUES ($1, $2, $3, '2025-01-01')`,
			lease, citizen(lease), fmt.Sprintf("街道-%d-ü", lease*7919%1000))
	}
	m := exampleMapping(t)
	m.Table = table
	m.Key = []string{"address_code", "lease_id", "start_date"}
	p, err := m.compile(schemas.Housing, table)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(context.Background(), "SELECT address_code, lease_id::text, start_date::text FROM "+table+" ORDER BY "+p.copyOrderSQL())
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	n := 0
	for rows.Next() {
		var a, l, d string
		if err := rows.Scan(&a, &l, &d); err != nil {
			t.Fatal(err)
		}
		key, err := p.recordKey(row{"address_code": {text: a}, "lease_id": {text: l}, "start_date": {text: d}})
		if err != nil {
			t.Fatal(err)
		}
		if o := copyOrder(key); o < last {
			t.Errorf("row %d: order %016x after %016x", n, o, last)
		} else {
			last = o
		}
		n++
	}
	if err := rows.Err(); err != nil || n != 50 {
		t.Fatalf("read %d rows: %v", n, err)
	}
}

// TestInterruptedCopyComparesCitizenIDsAsRead: a row the failed copy sent
// that was deleted and inserted again with its citizen ID in another
// form (legacy 15 digits, a lower-case x) is registered again by the new
// copy as the hub has it, and owes no end.
func TestInterruptedCopyComparesCitizenIDsAsRead(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	exec(t, db, "ALTER TABLE "+table+" ALTER COLUMN tenant_id TYPE character(18)")
	withX, x := citizenWithX(t)
	order := inCopyOrder([]string{"1", "2", "3"})
	tenants := map[string]int{order[0]: 7, order[1]: x, order[2]: 9}
	for l, n := range tenants {
		insertLease(t, db, table, atoi(t, l), citizen(n))
	}
	addr := testenv.Kafka(t, partitions)
	pub := newPublisher(t, addr)
	m := exampleMapping(t)
	m.Table = table
	s, err := New(Config{Source: schemas.Housing, Postgres: testenv.PostgresURL(), Table: table, Mapping: m,
		Publisher: &failCopyAfter{p: pub, n: 2}, BatchSize: 1, FlushInterval: 5 * time.Millisecond,
		StatusInterval: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = s.Run(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Run: %v, want the injected failure", err)
	}
	// While down, both rows it sent are written again in another form.
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = $1", order[0])
	insertLease(t, db, table, atoi(t, order[0]), legacy(citizen(7)))
	exec(t, db, "DELETE FROM "+table+" WHERE lease_id = $1", order[1])
	insertLease(t, db, table, atoi(t, order[1]), strings.ToLower(withX))

	s2 := newStream(t, table, pub, exampleMapping(t))
	r := start(t, s2)
	waitFor(t, r, "streaming", func() bool { return strings.Contains(logsOf(t), `msg="cdc: streaming"`) })
	r.stop(t)
	if !strings.Contains(logsOf(t), "initial snapshot did not complete") {
		t.Fatal("the second start did not take the copy again")
	}
	evs := records(t, addr)
	want := map[holding]bool{}
	for l, n := range tenants {
		want[holding{l, n}] = true
	}
	if got := hubView(evs); !maps.Equal(got, want) {
		t.Errorf("the hub holds %v; the table %v", got, want)
	}
	for _, ev := range evs {
		if ev.Type == schemas.RentalEnded {
			t.Errorf("%s was sent", summary(t, ev))
		}
	}
}
