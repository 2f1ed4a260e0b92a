package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestCharacterColumnsReadAlike: a character(n) value reads without the
// blanks that pad it, from the initial copy (which casts it to text,
// dropping them) and from the changes (whose WAL keeps them) alike. A
// lease keyed 'HZ-001' copied, then updated and deleted, is one record in
// the hub, and ends; a padded address code is sent as the code it is.
func TestCharacterColumnsReadAlike(t *testing.T) {
	db := connect(t)
	b := make([]byte, 5)
	rand.Read(b)
	table := "cdc_rentals_" + hex.EncodeToString(b)
	cleanUpRentals(t, table)
	exec(t, db, `CREATE DOMAIN `+table+`_code AS character(16)`)
	t.Cleanup(func() { exec(t, connect(t), "DROP DOMAIN IF EXISTS "+table+"_code CASCADE") })
	exec(t, db, `CREATE TABLE `+table+` (
		lease_code   character(10) PRIMARY KEY,
		tenant_id    character(18) NOT NULL,
		address_code `+table+`_code NOT NULL,
		start_date   date NOT NULL,
		end_date     date,
		signed_at    timestamptz NOT NULL DEFAULT now())`)
	exec(t, db, "ALTER TABLE "+table+" REPLICA IDENTITY FULL")
	insert := `INSERT INTO ` + table + ` (lease_code, tenant_id, address_code, start_date) VALUES ($1, $2, $3, '2025-01-01')`
	exec(t, db, insert, "HZ-001", citizen(1), addressCode)

	m := exampleMapping(t)
	m.Key = []string{"lease_code"}
	for _, op := range []*Operation{m.Insert, m.Update, m.Delete} {
		op.Data = maps.Clone(op.Data)
		op.Data["lease_id"] = "lease_code"
	}
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), m)
	r := start(t, s)
	waitFor(t, r, "the copy", func() bool { return s.Stats().Published == 1 })
	exec(t, db, "UPDATE "+table+" SET end_date = '2026-06-30' WHERE lease_code = 'HZ-001'")
	exec(t, db, "DELETE FROM "+table+" WHERE lease_code = 'HZ-001'")
	exec(t, db, insert, "HZ-002", citizen(2), addressCode)
	waitFor(t, r, "the changes", func() bool { return s.Stats().Published+s.Stats().Rejected == 4 })
	r.stop(t)

	evs := records(t, addr)
	want := sorted(
		"housing.rental_registered HZ-001 1 end=",           // copy
		"housing.rental_registered HZ-001 1 end=2026-06-30", // update
		"housing.rental_ended HZ-001 1 end=2026-06-30",      // delete
		"housing.rental_registered HZ-002 2 end=",           // insert
	)
	if got := summaries(t, evs); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	// One record key for lease HZ-001: the event ids share its part.
	keys := map[string]bool{}
	for _, ev := range evs {
		if d, ok := ev.Payload.(*schemas.RentalRegisteredData); ok && d.AddressCode != addressCode {
			t.Errorf("%s: address code %q, want %q", ev.ID, d.AddressCode, addressCode)
		}
		if strings.Contains(summary(t, ev), "HZ-001") {
			keys[ev.ID[:strings.LastIndexByte(ev.ID, '-')]] = true
		}
	}
	if len(keys) != 1 {
		t.Errorf("lease HZ-001 has the record keys %v, want one", keys)
	}
	if st := s.Stats(); st.Rejected != 0 {
		t.Errorf("%d bad rows, want none", st.Rejected)
	}

	// A copy taken again after a failed one finds the rows it sent by
	// the order of their keys: the key read from the WAL sorts as the
	// copy's SQL sorts it.
	m.Table = table
	p, err := m.compile(schemas.Housing, table)
	if err != nil {
		t.Fatal(err)
	}
	tbl := &tableInfo{types: map[string]columnType{"lease_code": {oid: pgtype.BPCharOID, base: pgtype.BPCharOID}}}
	var order []byte
	if err := db.QueryRow(context.Background(), "SELECT "+p.copyOrderSQL()+" FROM (SELECT 'HZ-002'::character(10) AS lease_code, "+
		"''::text AS tenant_id) t").Scan(&order); err != nil {
		t.Fatal(err)
	}
	key, err := p.recordKey(row{"lease_code": tbl.cell("lease_code", pgtype.BPCharOID, "HZ-002    ")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := copyOrder(key), binaryOrder(order); got != want {
		t.Errorf("copyOrder of the WAL's key = %016x, the copy's SQL %016x", got, want)
	}
}

// binaryOrder reads copyOrderSQL's 8 bytes as copyOrder's number.
func binaryOrder(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}
