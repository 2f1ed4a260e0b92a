package cdc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

func TestMappingCompile(t *testing.T) {
	ok := func() Mapping {
		return Mapping{CitizenID: "tenant_id", Key: []string{"lease_id"},
			Insert: &Operation{Type: schemas.RentalRegistered, Data: map[string]string{"lease_id": "lease_id"}}}
	}
	tests := []struct {
		name    string
		edit    func(m *Mapping)
		wantErr string
	}{
		{"valid", func(m *Mapping) {}, ""},
		{"other source", func(m *Mapping) { m.Source = schemas.Tax }, `mapping is for source "tax"`},
		{"other table", func(m *Mapping) { m.Table = "leases" }, `mapping is for table "leases"`},
		{"no citizen ID", func(m *Mapping) { m.CitizenID = "" }, "citizen_id"},
		{"no key", func(m *Mapping) { m.Key = nil }, "key"},
		{"nothing mapped", func(m *Mapping) { m.Insert = nil }, "at least one of insert"},
		{"type of another source", func(m *Mapping) { m.Insert.Type = schemas.ContractStarted }, `belongs to source "employment"`},
		{"unknown type", func(m *Mapping) { m.Insert.Type = "housing.moved" }, "not in the catalogue"},
		{"unknown field", func(m *Mapping) { m.Insert.Data["tenant"] = "tenant_id" }, `"tenant" is not a field`},
		{"bad special", func(m *Mapping) { m.Insert.Data["end"] = "$now" }, "not $commit_date"},
		{"bad time zone", func(m *Mapping) { m.TimeZone = "Mars/Olympus" }, "time_zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok()
			tt.edit(&m)
			_, err := m.compile(schemas.Housing, "rentals")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("compile: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("compile: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseMappingRejectsUnknownKeys(t *testing.T) {
	_, err := ParseMapping([]byte("citizen_id: a\nkeys: [b]\n"))
	if err == nil || !strings.Contains(err.Error(), "keys") {
		t.Fatalf("ParseMapping: %v, want an error naming the misspelt key", err)
	}
}

func TestExampleMappingEvents(t *testing.T) {
	p, err := exampleMapping(t).compile(schemas.Housing, "rentals")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.columns(), []string{"tenant_id", "lease_id", "address_code", "end_date", "start_date"}; !slices.Equal(got, want) {
		t.Errorf("columns %q, want %q", got, want)
	}
	commit := time.Date(2026, 3, 1, 20, 30, 0, 0, time.UTC) // 2026-03-02 04:30 in Beijing
	full := row{"lease_id": {text: "42"}, "tenant_id": {text: citizen(7)}, "address_code": {text: "230102001001"},
		"start_date": {text: "2026-03-01"}, "end_date": {null: true}, "signed_at": {text: "2026-02-28 09:15:00.5+00"}}
	with := func(edit func(r row)) row {
		r := row{}
		for k, v := range full {
			r[k] = v
		}
		edit(r)
		return r
	}
	tests := []struct {
		name     string
		kind     string
		row      row
		wantType schemas.Type
		wantData string
		wantTime time.Time
		wantErr  string // rowError reason
	}{
		{"snapshot at commit time", opSnapshot, full, schemas.RentalRegistered,
			`{"address_code":"230102001001","lease_id":"42","start":"2026-03-01"}`, commit, ""},
		{"insert at commit time", opInsert, full, schemas.RentalRegistered,
			`{"address_code":"230102001001","lease_id":"42","start":"2026-03-01"}`, commit, ""},
		{"update at commit time", opUpdate, with(func(r row) { r["end_date"] = cell{text: "2027-02-28"} }), schemas.RentalRegistered,
			`{"address_code":"230102001001","end":"2027-02-28","lease_id":"42","start":"2026-03-01"}`, commit, ""},
		{"delete ends on the commit date in Beijing", opDelete, full, schemas.RentalEnded,
			`{"end":"2026-03-02","lease_id":"42"}`, commit, ""},
		{"delete keeps its own end date", opDelete, with(func(r row) { r["end_date"] = cell{text: "2026-12-31"} }), schemas.RentalEnded,
			`{"end":"2026-12-31","lease_id":"42"}`, commit, ""},
		{"invalid citizen ID", opInsert, with(func(r row) { r["tenant_id"] = cell{text: "110101199001010000"} }), "", "", time.Time{}, "invalid_citizen_id"},
		{"NULL citizen ID", opInsert, with(func(r row) { r["tenant_id"] = cell{null: true} }), "", "", time.Time{}, "invalid_citizen_id"},
		{"NULL key", opInsert, with(func(r row) { r["lease_id"] = cell{null: true} }), "", "", time.Time{}, "missing_key"},
		{"unchanged TOAST", opUpdate, with(func(r row) { r["address_code"] = cell{unchanged: true} }), "", "", time.Time{}, "bad_value"},
		{"column not carried", opDelete, row{"lease_id": {text: "42"}, "tenant_id": {text: citizen(7)}}, "", "", time.Time{}, "bad_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, _, err := p.event(change{kind: tt.kind, row: tt.row, version: 0x16B3748, commit: commit})
			if tt.wantErr != "" {
				var re *rowError
				if !errors.As(err, &re) || re.reason != tt.wantErr {
					t.Fatalf("event: %v, want a %s row error", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.row["tenant_id"].text) && tt.row["tenant_id"].text != "" {
					t.Errorf("the error %q holds the row's citizen ID", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("event: %v", err)
			}
			if ev.Type != tt.wantType || string(ev.Data) != tt.wantData || !ev.Time.Equal(tt.wantTime) {
				t.Errorf("event %s %s at %v, want %s %s at %v", ev.Type, ev.Data, ev.Time, tt.wantType, tt.wantData, tt.wantTime)
			}
			if want := eventID(schemas.Housing, "42", 0x16B3748); ev.ID != want {
				t.Errorf("id %s, want %s", ev.ID, want)
			}
			// The schemas accept it, as the hub will.
			b, err := schemas.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := schemas.Decode(schemas.Input{Value: b}); err != nil {
				t.Errorf("the hub would reject it: %v", err)
			}
		})
	}
}

func TestEventIDIsPerChange(t *testing.T) {
	ids := map[string]bool{}
	for _, key := range []string{"1", "2"} {
		for _, lsn := range []int64{100, 101} {
			ids[eventID(schemas.Housing, key, lsn)] = true
		}
	}
	if len(ids) != 4 {
		t.Errorf("%d distinct ids for 2 keys × 2 positions", len(ids))
	}
	if eventID(schemas.Housing, "1", 100) != eventID(schemas.Housing, "1", 100) {
		t.Error("the same change got two ids")
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		in      string
		kind    fieldKind
		want    string // JSON
		wantErr bool
	}{
		{"42", kindString, `"42"`, false},
		{"52.50", kindNumber, `52.5`, false},
		{"1e3", kindNumber, `1000`, false},
		{"NaN?", kindNumber, ``, true},
		{"t", kindBool, `true`, false},
		{"maybe", kindBool, ``, true},
		{"{pension,medical}", kindStrings, `["pension","medical"]`, false},
		{`{"a b","c,d",e}`, kindStrings, `["a b","c,d","e"]`, false},
		{`{}`, kindStrings, `[]`, false},
		{"pension, medical", kindStrings, `["pension","medical"]`, false},
		{`{a,NULL}`, kindStrings, ``, true},
		{`{NULL,a}`, kindStrings, ``, true},
		{`{{a}}`, kindStrings, ``, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := convert(tt.in, tt.kind)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("convert: %v, want an error", v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(v)
			if string(b) != tt.want {
				t.Errorf("convert: %s, want %s", b, tt.want)
			}
		})
	}
}

// A table whose name makes a valid slot name as it is keeps the names
// earlier versions gave it, so that existing deployments keep their slot;
// one whose name loses characters (non-ASCII ones, or the end of a long
// name) gets a hash of its full name appended.
func TestConfigDefaults(t *testing.T) {
	// tableHash is 8 hex digits of the SHA-256 of the table as configured.
	tableHash := func(table string) string {
		sum := sha256.Sum256([]byte(table))
		return hex.EncodeToString(sum[:4])
	}
	tests := []struct {
		table, slot, publication string
	}{
		{"rentals", "pophub_housing_rentals", "pophub_rentals"},
		{"Housing.Rentals", "pophub_housing_housing_rentals", "pophub_housing_rentals"},
		{"housing.rental_contracts_2024", "pophub_housing_housing_rental_contracts_2024", "pophub_housing_rental_contracts_2024"},
		{strings.Repeat("x", 48), "pophub_housing_" + strings.Repeat("x", 48), "pophub_" + strings.Repeat("x", 48)},
		{strings.Repeat("x", 80), "pophub_housing_" + strings.Repeat("x", 39) + "_" + tableHash(strings.Repeat("x", 80)),
			"pophub_" + strings.Repeat("x", 47) + "_" + tableHash(strings.Repeat("x", 80))},
		{"租赁备案", "pophub_housing_" + tableHash("租赁备案"), "pophub_" + tableHash("租赁备案")},
		{"housing.租赁备案", "pophub_housing_housing_" + tableHash("housing.租赁备案"), "pophub_housing_" + tableHash("housing.租赁备案")},
		{"rentals_租赁", "pophub_housing_rentals_" + tableHash("rentals_租赁"), "pophub_rentals_" + tableHash("rentals_租赁")},
	}
	for _, tt := range tests {
		c := Config{Source: schemas.Housing, Table: tt.table, Postgres: "postgres://x", Publisher: &crashAfterAck{}}
		c.setDefaults()
		if c.Slot != tt.slot || c.Publication != tt.publication {
			t.Errorf("%s: slot %s, publication %s; want %s, %s", tt.table, c.Slot, c.Publication, tt.slot, tt.publication)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tt.table, err)
		}
	}
}

// Tables whose names differ only in characters a slot name cannot hold,
// or only past what fits, get a slot and a publication of their own:
// sharing one would stop the second table's start.
func TestConfigDefaultsDistinct(t *testing.T) {
	long := strings.Repeat("rental_contracts_", 4)
	longest := schemas.Housing
	for _, s := range schemas.Sources {
		if len(s) > len(longest) {
			longest = s
		}
	}
	tests := []struct {
		name   string
		source schemas.Source
		a, b   string
	}{
		{"Chinese names", schemas.Housing, "租赁备案", "产权登记"},
		{"Chinese names in one schema", schemas.Housing, "housing.租赁备案", "housing.产权登记"},
		{"Chinese and ASCII", schemas.Housing, "rentals_租赁", "rentals_产权"},
		{"long names alike up to the cut", schemas.Housing, long + "2023", long + "2024"},
		{"long Chinese names, longest source", longest, strings.Repeat("租", 20) + "甲", strings.Repeat("租", 20) + "乙"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Config{Source: tt.source, Table: tt.a, Postgres: "postgres://x", Publisher: &crashAfterAck{}}
			b := Config{Source: tt.source, Table: tt.b, Postgres: "postgres://x", Publisher: &crashAfterAck{}}
			a.setDefaults()
			b.setDefaults()
			if a.Slot == b.Slot {
				t.Errorf("tables %q and %q share slot %s", tt.a, tt.b, a.Slot)
			}
			if a.Publication == b.Publication {
				t.Errorf("tables %q and %q share publication %s", tt.a, tt.b, a.Publication)
			}
			for _, c := range []Config{a, b} {
				if err := c.Validate(); err != nil { // names of 1 to 63 bytes of [a-z0-9_]
					t.Errorf("%s: %v", c.Table, err)
				}
			}
		})
	}
}

// The mapping's table matches the configured one as PostgreSQL reads
// names: --table RENTALS and public.rentals are the mapping's rentals.
func TestSameTable(t *testing.T) {
	tests := []struct {
		mapping, configured string
		want                bool
	}{
		{"rentals", "rentals", true},
		{"rentals", "RENTALS", true},
		{"rentals", "public.rentals", true},
		{"rentals", "housing.rentals", true},
		{"housing.rentals", "housing.rentals", true},
		{"housing.rentals", "Housing.Rentals", true},
		{"housing.rentals", "rentals", false},
		{"public.rentals", "rentals", true},
		{"housing.rentals", "public.rentals", false},
		{"rentals", "leases", false},
		{"rentals", `"Rentals"`, false},
		{`"Rentals"`, `"Rentals"`, true},
		{`"a.b"`, `"a.b"`, true},
		{`"a.b"`, "a.b", false},
	}
	for _, tt := range tests {
		if got := sameTable(tt.mapping, tt.configured); got != tt.want {
			t.Errorf("sameTable(%q, %q) = %v, want %v", tt.mapping, tt.configured, got, tt.want)
		}
	}
}

// citizenWithX is a valid citizen ID whose check character is X, and its
// number for citizen.
func citizenWithX(t testing.TB) (string, int) {
	t.Helper()
	for n := range 1000 {
		if id := citizen(n); strings.HasSuffix(id, "X") {
			return id, n
		}
	}
	t.Fatal("no citizen number has the check character X")
	return "", 0
}

// legacy is the 15-digit form (GB 11643-1989) of an 18-digit citizen ID
// born in the 1900s.
func legacy(id string) string { return id[:6] + id[8:17] }

// fullWidth is id as an input method in full-width mode types it:
// digits ０-９ and Ｘ.
func fullWidth(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r == 'X' || r == 'x' {
			return r + 0xFEE0
		}
		return r
	}, id)
}

// TestCitizenIDsReadAsImportDoes: the subject column is read as `pophub
// import` reads it: full-width digits and Ｘ folded to ASCII, trimmed,
// upper-cased, a legacy 15-digit number upgraded and counted. A value
// that is no ID is told why without the value, and without calling 18
// characters the wrong length.
func TestCitizenIDsReadAsImportDoes(t *testing.T) {
	p, err := exampleMapping(t).compile(schemas.Housing, "rentals")
	if err != nil {
		t.Fatal(err)
	}
	withX, _ := citizenWithX(t)
	tests := []struct {
		name         string
		text         string
		want         string
		wantUpgraded int
		wantErr      string // rowError reason
		wantDetail   string // in the row error's detail
	}{
		{"18 digits", citizen(7), citizen(7), 0, "", ""},
		{"lower-case x", strings.ToLower(withX), withX, 0, "", ""},
		{"spaces around", "  " + citizen(7) + " ", citizen(7), 0, "", ""},
		{"legacy 15 digits", legacy(citizen(7)), citizen(7), 1, "", ""},
		{"legacy padded by character(18)", legacy(citizen(7)) + "   ", citizen(7), 1, "", ""},
		{"legacy with a bad date", "110101901301001", "", 0, "invalid_citizen_id", ""},
		{"legacy with a letter", "11010190010100X", "", 0, "invalid_citizen_id", ""},
		{"bad check character", citizen(7)[:17] + "0", "", 0, "invalid_citizen_id", ""},
		{"full-width digits", fullWidth(citizen(7)), citizen(7), 0, "", ""},
		{"full-width X", fullWidth(withX), withX, 0, "", ""},
		{"full-width lower-case x", fullWidth(strings.ToLower(withX)), withX, 0, "", ""},
		{"full-width legacy 15 digits", fullWidth(legacy(citizen(7))), citizen(7), 1, "", ""},
		{"full-width spaces around", "\u3000" + fullWidth(citizen(7)) + "\u3000", citizen(7), 0, "", ""},
		{"full-width, bad check character", fullWidth(citizen(7)[:17] + "0"), "", 0, "invalid_citizen_id", citizenid.ErrCheck.Error()},
		{"18 characters, one an ideographic zero", "〇" + citizen(7)[1:], "", 0, "invalid_citizen_id", citizenid.ErrDigits.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := row{"lease_id": {text: "42"}, "tenant_id": {text: tt.text}, "address_code": {text: "230102001001"},
				"start_date": {text: "2026-03-01"}, "end_date": {null: true}, "signed_at": {text: "2026-02-28 09:15:00+00"}}
			ev, upgraded, err := p.event(change{kind: opInsert, row: r, version: 7})
			if tt.wantErr != "" {
				var re *rowError
				if !errors.As(err, &re) || re.reason != tt.wantErr {
					t.Fatalf("event: %v, want a %s row error", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimSpace(tt.text)) {
					t.Errorf("the error %q holds the citizen ID", err)
				}
				if !strings.Contains(re.detail, tt.wantDetail) {
					t.Errorf("detail %q, want it to say %q", re.detail, tt.wantDetail)
				}
				return
			}
			if err != nil {
				t.Fatalf("event: %v", err)
			}
			if string(ev.Subject) != tt.want || upgraded != tt.wantUpgraded {
				t.Errorf("subject %s, %d upgraded; want %s, %d", ev.Subject.Masked(), upgraded, citizenid.Mask(tt.want), tt.wantUpgraded)
			}
			if want := eventID(schemas.Housing, "42", 7); ev.ID != want {
				t.Errorf("id %s, want %s: the citizen ID is no part of it", ev.ID, want)
			}
		})
	}
}

// TestSpouseIDReadAsImportDoes: a data field that holds a citizen ID is
// read as the subject is.
func TestSpouseIDReadAsImportDoes(t *testing.T) {
	m := Mapping{CitizenID: "citizen_id", Key: []string{"marriage_id"},
		Insert: &Operation{Type: schemas.MarriageRegistered, Data: map[string]string{"spouse_id": "spouse_id"}}}
	p, err := m.compile(schemas.Marriage, "marriages")
	if err != nil {
		t.Fatal(err)
	}
	withX, _ := citizenWithX(t)
	for _, tt := range []struct {
		citizen, spouse string
		wantUpgraded    int
		wantSpouse      string
	}{
		{citizen(1), citizen(2), 0, citizen(2)},
		{citizen(1), strings.ToLower(withX), 0, withX},
		{legacy(citizen(1)), legacy(citizen(2)) + "   ", 2, citizen(2)},
		{citizen(1), fullWidth(withX), 0, withX},
	} {
		r := row{"marriage_id": {text: "9"}, "citizen_id": {text: tt.citizen}, "spouse_id": {text: tt.spouse}}
		ev, upgraded, err := p.event(change{kind: opInsert, row: r, version: 7, commit: time.Now()})
		if err != nil {
			t.Fatalf("event: %v", err)
		}
		if want := `{"spouse_id":"` + tt.wantSpouse + `"}`; string(ev.Data) != want || upgraded != tt.wantUpgraded {
			t.Errorf("data %s, %d upgraded; want %s, %d", citizenid.MaskText(string(ev.Data)), upgraded, citizenid.MaskText(want), tt.wantUpgraded)
		}
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := schemas.Decode(schemas.Input{Value: b}); err != nil {
			t.Errorf("the hub would reject it: %v", err)
		}
	}
	r := row{"marriage_id": {text: "9"}, "citizen_id": {text: citizen(1)}, "spouse_id": {text: "110101901301001"}}
	var re *rowError
	if _, _, err := p.event(change{kind: opInsert, row: r, version: 7, commit: time.Now()}); !errors.As(err, &re) || re.reason != "bad_value" {
		t.Errorf("a bad legacy spouse_id: %v, want a bad_value row error", err)
	}
}

// TestCitizenIDFormsAreOneRecord: rewriting a citizen ID in another form
// moves nothing, and, with the citizen ID column in the record key,
// keeps the record key and so the event ids.
func TestCitizenIDFormsAreOneRecord(t *testing.T) {
	m := exampleMapping(t)
	m.Key = []string{"tenant_id", "lease_id"}
	p, err := m.compile(schemas.Housing, "rentals")
	if err != nil {
		t.Fatal(err)
	}
	withX, _ := citizenWithX(t)
	r := func(tenant string) row { return row{"lease_id": {text: "42"}, "tenant_id": {text: tenant}} }
	for _, tt := range []struct {
		name     string
		old, cur string
		moved    bool
	}{
		{"legacy to 18 digits", legacy(citizen(7)), citizen(7), false},
		{"padded legacy to 18 digits", legacy(citizen(7)) + "   ", citizen(7), false},
		{"x to X", strings.ToLower(withX), withX, false},
		{"full-width to ASCII", fullWidth(withX), withX, false},
		{"another citizen", legacy(citizen(7)), citizen(8), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.movedAway(r(tt.old), r(tt.cur)); got != tt.moved {
				t.Errorf("movedAway = %v, want %v", got, tt.moved)
			}
			ko, _ := p.recordKey(r(tt.old))
			kc, _ := p.recordKey(r(tt.cur))
			if (ko != kc) != tt.moved {
				t.Errorf("record keys differ: %v, want %v", ko != kc, tt.moved)
			}
		})
	}
}

func TestCitizenIDForms(t *testing.T) {
	withX, _ := citizenWithX(t)
	id := citizen(7)
	for _, tt := range []struct {
		text string
		want []string
	}{
		{id, []string{id, legacy(id)}},
		{legacy(id) + "   ", []string{legacy(id) + "   ", id, legacy(id)}},
		{strings.ToLower(withX), []string{strings.ToLower(withX), withX, legacy(withX)}},
		{fullWidth(withX), []string{fullWidth(withX), withX, strings.ToLower(withX), legacy(withX)}},
		{"not an ID", []string{"not an ID"}},
	} {
		if got := citizenIDForms(tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("citizenIDForms(%s) gave %d forms, want %d", citizenid.Mask(tt.text), len(got), len(tt.want))
		}
	}
}

// TestTimeColumn: a mapping may date changes by a column of the row
// (the example dates them by their commit): a timestamptz as it is, a
// timestamp without a zone as China time, and a value that is no time is
// a bad row.
func TestTimeColumn(t *testing.T) {
	m := exampleMapping(t)
	m.Time = "signed_at"
	p, err := m.compile(schemas.Housing, "rentals")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, signed string
		want         time.Time // zero: a bad_time row
	}{
		{"timestamptz", "2026-02-28 09:15:00.5+00", time.Date(2026, 2, 28, 9, 15, 0, 5e8, time.UTC)},
		{"naive timestamp is Beijing time", "2026-02-28 09:15:00", time.Date(2026, 2, 28, 1, 15, 0, 0, time.UTC)},
		{"bad time", "infinity", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := row{"lease_id": {text: "42"}, "tenant_id": {text: citizen(7)}, "address_code": {text: "230102001001"},
				"start_date": {text: "2026-03-01"}, "end_date": {null: true}, "signed_at": {text: tc.signed}}
			ev, _, err := p.event(change{kind: opInsert, row: r, version: 1, commit: time.Now()})
			if tc.want.IsZero() {
				var re *rowError
				if !errors.As(err, &re) || re.reason != "bad_time" {
					t.Fatalf("event: %v, want a bad_time row error", err)
				}
				return
			}
			if err != nil || !ev.Time.Equal(tc.want) {
				t.Errorf("event at %v, %v; want %v", ev.Time, err, tc.want)
			}
		})
	}
}

// TestNaiveTimeInSummerOf1988: a timestamp without a zone in the summers
// of 1986–1991 is China time at +08:00, by default and with time_zone
// Asia/Shanghai (which the tz database gives +09:00 then), so that its
// change keeps its day in the hub, which dates changes by UTC+08:00.
func TestNaiveTimeInSummerOf1988(t *testing.T) {
	for _, zone := range []string{"", "Asia/Shanghai"} {
		m := exampleMapping(t)
		m.TimeZone = zone
		m.Time = "signed_at"
		p, err := m.compile(schemas.Housing, "rentals")
		if err != nil {
			t.Fatal(err)
		}
		r := row{"lease_id": {text: "42"}, "tenant_id": {text: citizen(7)}, "address_code": {text: "230102001001"},
			"start_date": {text: "1988-06-01"}, "end_date": {null: true}, "signed_at": {text: "1988-06-01 00:30:00"}}
		ev, _, err := p.event(change{kind: opInsert, row: r, version: 1, commit: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Date(1988, 5, 31, 16, 30, 0, 0, time.UTC); !ev.Time.Equal(want) {
			t.Errorf("time_zone %q: event time %v, want %v", zone, ev.Time.UTC(), want)
		}
	}
}

// TestParseList: a list field reads a PostgreSQL array as the server
// prints it, with its bounds when the lower bound is not 1 ([0:2]={…},
// after an UPDATE of a[0]), or a comma-separated text.
func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: refused
	}{
		{"{pension,medical}", []string{"pension", "medical"}},
		{"{}", []string{}},
		{`{"a b",c}`, []string{"a b", "c"}},
		{`{"a\"b",NULL}`, nil},
		{"[0:2]={pension,medical,injury}", []string{"pension", "medical", "injury"}},
		{`[-1:0]={"a b",c}`, []string{"a b", "c"}},
		{"[1:2][1:1]={{a},{b}}", nil},
		{"pension, medical", []string{"pension", "medical"}},
		{"{pension", nil},
	}
	for _, tc := range tests {
		got, err := parseList(tc.in)
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("parseList(%q) = %q, want an error", tc.in, got)
		case tc.want != nil && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("parseList(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestCitizenIDReadAsImportReadsIt: a citizen ID column is read as
// `pophub import` reads an ID cell: characters that show as nothing at
// its edges are dropped (a value pasted from a web page), one inside it
// is refused naming it, full-width digits are folded, a lower-case x is
// upper-cased and spaces are trimmed.
func TestCitizenIDReadAsImportReadsIt(t *testing.T) {
	const id = "230102199001011230"
	tests := []struct {
		in, want string
		err      string
	}{
		{id, id, ""},
		{"\u200b" + id, id, ""},
		{id + "\ufeff", id, ""},
		{"\u2060" + id + "\u200d", id, ""},
		{"\u3000" + id + " ", id, ""},
		{"２３０１０２１９９００１０１１２３０", id, ""},
		{"23010219900101\u200b1230", "", "invisible character U+200B"},
		{"23010219900101\u200e1230", "", "invisible character U+200E"},
	}
	for _, tc := range tests {
		got, _, err := parseCitizenID(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error naming the %s", tc.in, err, tc.err)
			}
		case err != nil || string(got) != tc.want:
			t.Errorf("%q read as %q (%v), want %s", tc.in, got, err, tc.want)
		}
	}
}
