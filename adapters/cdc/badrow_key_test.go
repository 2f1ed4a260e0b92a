package cdc

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestBadRowLogNamesItsKey: a bad row, whether found in the initial
// snapshot, while streaming, or refused by the schemas at publishing, is
// logged with its record key (lease_id), so that the department can find
// it in its table, and counted; its citizen ID is not in the log.
func TestBadRowLogNamesItsKey(t *testing.T) {
	db := connect(t)
	table := rentalsTable(t, db)
	badCheck := func(n int) string {
		id := citizen(n)
		if id[17] == '0' {
			return id[:17] + "1"
		}
		return id[:17] + "0"
	}
	insertLease(t, db, table, 90000, badCheck(1)) // in the snapshot
	addr := testenv.Kafka(t, partitions)
	s := newStream(t, table, newPublisher(t, addr), exampleMapping(t))
	r := start(t, s)
	waitFor(t, r, "the snapshot", func() bool { return s.Stats().Rejected == 1 })

	// The README's example: a bad check character.
	exec(t, db, `INSERT INTO `+table+` VALUES (90001, $1, '230102001001', '2026-04-01', NULL, '2026-03-25 10:00+08')`, badCheck(2))
	// A valid citizen ID, an address code the schemas refuse: rejected when
	// published.
	exec(t, db, `INSERT INTO `+table+` (lease_id, tenant_id, address_code, start_date) VALUES (90002, $1, '999999999999', '2025-01-01')`, citizen(3))
	insertLease(t, db, table, 90003, citizen(4))
	waitFor(t, r, "the rows", func() bool { return s.Stats().Published == 1 && s.Stats().Rejected == 3 })
	r.stop(t)

	var badLines []string
	for _, line := range strings.Split(logsOf(t), "\n") {
		if strings.Contains(line, "skipping bad row") {
			badLines = append(badLines, line)
		}
	}
	if len(badLines) != 3 {
		t.Fatalf("%d bad rows logged, want 3:\n%s", len(badLines), strings.Join(badLines, "\n"))
	}
	for _, lease := range []string{"90000", "90001", "90002"} {
		found := false
		for _, line := range badLines {
			found = found || strings.Contains(line, "key.lease_id="+lease+" ")
		}
		if !found {
			t.Errorf("no bad row logged with key.lease_id=%s:\n%s", lease, strings.Join(badLines, "\n"))
		}
	}
	logs := logsOf(t)
	for _, id := range []string{badCheck(1), badCheck(2), citizen(3)} {
		if strings.Contains(logs, id) {
			t.Errorf("the logs hold the raw citizen ID %s", id)
		}
	}
	if strings.Contains(logs, "key.lease_id=90003") {
		t.Error("a good row was logged as bad")
	}
}

// TestKeyAttr: a bad row's key, as logged, holds the key columns'
// values, with a citizen ID column masked and any citizen ID in another
// key column masked too.
func TestKeyAttr(t *testing.T) {
	p := &plan{citizenID: "tenant_id", key: []string{"tenant_id", "lease_id", "note"}}
	id := citizen(7)
	tests := []struct {
		name string
		row  row
		want string
	}{
		{"all carried", row{"tenant_id": {text: id}, "lease_id": {text: "90001"}, "note": {text: "flat 3"}},
			"key.tenant_id=" + citizenid.Mask(id) + " key.lease_id=90001 key.note=\"flat 3\""},
		{"a padded legacy ID", row{"tenant_id": {text: "110101900101001   "}, "lease_id": {text: "7"}, "note": {text: "x"}},
			"key.tenant_id=" + citizenid.Mask("110101900101001") + " key.lease_id=7 key.note=x"},
		{"an ID in another key column", row{"tenant_id": {text: "short"}, "lease_id": {text: "1"}, "note": {text: "spouse " + id}},
			"key.tenant_id=**** key.lease_id=1 key.note=\"spouse " + citizenid.MaskText(id) + "\""},
		{"NULL and not carried", row{"tenant_id": {null: true}, "lease_id": {unchanged: true}},
			"key.tenant_id=<nil>"},
		{"a long value is cut", row{"lease_id": {text: strings.Repeat("a", 200)}},
			"key.lease_id=" + strings.Repeat("a", maxLoggedKey) + "…"},
		{"an ID where the cut falls is masked first", row{"lease_id": {text: "1"}, "note": {text: strings.Repeat("n", 50) + id}},
			"key.lease_id=1 key.note=" + (strings.Repeat("n", 50) + citizenid.MaskText(id))[:maxLoggedKey] + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey {
					return slog.Attr{}
				}
				return a
			}})).Info("", p.keyAttr(tc.row))
			if got := strings.TrimSpace(b.String()); got != tc.want {
				t.Errorf("logged %s\n     want %s", got, tc.want)
			}
			if strings.Contains(b.String(), id[:14]) {
				t.Error("the raw citizen ID is logged")
			}
		})
	}
}

// TestKeyAttrMasksIDColumns: a key column read into a citizen-ID field
// (spouse_id) is masked whatever it holds, also a mistyped ID written in
// groups, which is no plausible ID for MaskText and the likely reason the
// row is bad.
func TestKeyAttrMasksIDColumns(t *testing.T) {
	p := &plan{citizenID: "husband_id", key: []string{"husband_id", "wife_id"}, ops: map[string]*opPlan{
		"insert": {typ: schemas.MarriageRegistered, fields: []fieldPlan{{name: "spouse_id", kind: kindCitizenID, expr: expr{{column: "wife_id"}}}}},
	}}
	for _, wife := range []string{"230102 19900101 1231", "230102-19900101-1231", "23010219900101123"} {
		got := p.keyAttr(row{"husband_id": {text: "230102198801011234"}, "wife_id": {text: wife}}).String()
		if strings.Contains(got, "19900101") || strings.Contains(got, "19880101") {
			t.Errorf("wife_id %q logged as %s", wife, got)
		}
	}
}
