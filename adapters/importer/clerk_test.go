package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/width"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// These tests follow a clerk of a spreadsheet department through
// `pophub import`: every message must say what is wrong with the file in
// terms of its own rows and columns, and what to do about it.

// rentalRow returns the housing mapping, its table and a rental
// registration row of it.
func rentalRow(t *testing.T) (*Mapping, table, []string) {
	t.Helper()
	m, tab, _ := housingRows(t, 60)
	for _, r := range tab.rows {
		if r[colIndex(t, tab, "业务类型")] == "租赁登记备案" {
			return m, tab, append([]string(nil), r...)
		}
	}
	t.Fatal("no rental registration in the population")
	return nil, table{}, nil
}

// TestRepeatAndUnappliedCorrection: a line repeated exactly and a line
// that changes a record without raising its version are told apart: the
// first is a harmless repeat (counted apart, not rejected), the second a
// reject that names the columns that differ and the version column to
// raise.
func TestRepeatAndUnappliedCorrection(t *testing.T) {
	m, _, rental := rentalRow(t)
	tab := table{header: nil}
	_, full, _ := housingRows(t, 60)
	tab.header = full.header
	corrected := append([]string(nil), rental...)
	corrected[colIndex(t, tab, "租期起")] = "2031/1/1"
	corrected[colIndex(t, tab, "租期止")] = "2032/1/1"
	tab.rows = [][]string{rental, rental, corrected}
	file := tempFile(t, "dup.csv")
	writeCSV(t, file, tab, gbk)
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Valid != 1 || len(rep.Rejects) != 1 || rep.Rejected != 1 || len(rep.Repeats) != 1 || rep.Repeated != 1 {
		t.Fatalf("%d valid, rejects %v, repeats %v; want 1 valid, 1 reject and 1 repeat", rep.Valid, rep.Rejects, rep.Repeats)
	}
	repeat, correction := rep.Repeats[0], rep.Rejects[0]
	if repeat.Line != 3 || repeat.First != 2 || !strings.Contains(repeat.String(), "repeats line 2") || !strings.Contains(repeat.String(), "nothing to fix") {
		t.Errorf("the repeat: %s; want it to say it repeats line 2 and is harmless", repeat)
	}
	if correction.Line != 4 || correction.Reason != ReasonDuplicateID || strings.Contains(correction.Detail, "repeats") {
		t.Errorf("the correction: %s; want a duplicate_id that is no repeat", correction)
	}
	for _, want := range []string{"line 2", "租期起", "租期止", "业务编号", "版本号", "raise"} {
		if !strings.Contains(correction.Detail, want) {
			t.Errorf("the correction's detail %q does not mention %q", correction.Detail, want)
		}
	}
	if strings.Contains(correction.Detail, "2031") || strings.Contains(correction.Detail, "2030") {
		t.Errorf("the correction's detail %q quotes a cell", correction.Detail)
	}
	if correction.String() == strings.Replace(repeat.String(), "line 3", "line 4", 1) {
		t.Error("the repeat and the correction read alike")
	}
}

// TestJSONLSameIDOtherContent: a JSONL line that reuses an earlier
// line's id with other content names the attributes that differ.
func TestJSONLSameIDOtherContent(t *testing.T) {
	events := population(t, 50, schemas.Marriage)
	changed := events[0]
	changed.Time = changed.Time.Add(time.Hour)
	lines := encodeLines(t, []schemas.Event{events[0], changed})
	file := tempFile(t, "marriage.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Source: schemas.Marriage, File: file, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rejects) != 1 {
		t.Fatalf("rejects %v, want one", rep.Rejects)
	}
	if d := rep.Rejects[0].Detail; !strings.Contains(d, "line 1") || !strings.Contains(d, "time") || strings.Contains(d, "data") {
		t.Errorf("detail %q, want it to name line 1 and the time (only)", d)
	}
}

// withCheckX returns a valid ID, derived from id, whose check character
// is X.
func withCheckX(t *testing.T, id string) string {
	t.Helper()
	for n := range 1000 {
		first17 := id[:14] + fmt.Sprintf("%03d", n)
		if citizenid.CheckChar(first17) == 'X' {
			return first17 + "X"
		}
	}
	t.Fatal("no sequence number gives the check character X")
	return ""
}

// TestFullWidthIDs: IDs typed with full-width digits (and Ｘ), as an input
// method in full-width mode writes them, are read as the ASCII ID, in the
// subject and in citizen_id columns.
func TestFullWidthIDs(t *testing.T) {
	m, tab, rental := rentalRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	subjectCol := colIndex(t, tab, "权利人身份证号")
	ascii := withCheckX(t, rental[subjectCol])
	for _, v := range []string{width.Widen.String(ascii), width.Widen.String(strings.ToLower(ascii))} {
		cells := append([]string(nil), rental...)
		cells[subjectCol] = v
		got := p.mapRow(2, cells, nil, time.Now())
		if got.rej != nil {
			t.Errorf("a full-width ID is rejected: %s", got.rej)
			continue
		}
		if string(got.key) != ascii || !strings.Contains(string(got.value), `"subject":"`+ascii+`"`) {
			t.Errorf("key %q, event %s; want the subject %s", got.key, got.value, ascii)
		}
	}

	mm := mustMapping(t, schemas.Marriage)
	mtab, _ := render(t, mm, population(t, 50, schemas.Marriage))
	mp, err := newPlan(mm, mtab.header)
	if err != nil {
		t.Fatal(err)
	}
	row := append([]string(nil), mtab.rows[0]...)
	spouseCol := colIndex(t, mtab, "配偶身份证号")
	spouse := withCheckX(t, row[spouseCol])
	row[spouseCol] = width.Widen.String(spouse)
	got := mp.mapRow(2, row, nil, time.Now())
	if got.rej != nil {
		t.Fatalf("a full-width spouse ID is rejected: %s", got.rej)
	}
	if !strings.Contains(string(got.value), `"spouse_id":"`+spouse+`"`) {
		t.Errorf("event %s; want the spouse_id %s", got.value, spouse)
	}
}

// TestNumberIDCells: an 18-digit ID stored as a number lost its last
// digits to Excel; the reject says so and how to fix the column, rather
// than that the ID has the wrong length. A 15-digit legacy ID survives
// being a number and is still upgraded.
func TestNumberIDCells(t *testing.T) {
	m, tab, rental := rentalRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	subjectCol := colIndex(t, tab, "权利人身份证号")
	const hint = "the cell is a number (Excel keeps only 15 significant digits): format the column as text and re-enter the IDs"
	for _, tc := range []struct {
		name  string
		value string
		kind  cellKind
	}{
		{"E notation in a workbook", "2.30102199207073E+17", numberCell},
		{"E notation as text (a CSV saved by Excel)", "2.30102E+17", textCell},
		{"all digits, the last ones lost", "230102199207073000", numberCell},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cells := append([]string(nil), rental...)
			cells[subjectCol] = tc.value
			kinds := make([]cellKind, len(cells))
			kinds[subjectCol] = tc.kind
			got := p.mapRow(2, cells, kinds, time.Now())
			if got.rej == nil || got.rej.Reason != schemas.ReasonInvalidSubject || got.rej.Detail != hint || got.rej.Column != "权利人身份证号" {
				t.Errorf("reject %v, want invalid_subject in 权利人身份证号 saying %q", got.rej, hint)
			}
		})
	}
	t.Run("a legacy ID as a number", func(t *testing.T) {
		const old = "110105710923002" // born 1971-09-23
		cells := append([]string(nil), rental...)
		cells[subjectCol] = old
		kinds := make([]cellKind, len(cells))
		kinds[subjectCol] = numberCell
		if got := p.mapRow(2, cells, kinds, time.Now()); got.rej != nil || got.upgraded != 1 {
			t.Errorf("reject %v, %d upgraded; want the ID upgraded", got.rej, got.upgraded)
		}
	})

	// As the reviewer saw it: a workbook whose ID column holds numbers.
	file := tempFile(t, "housing.xlsx")
	f := excelize.NewFile()
	defer f.Close()
	sheet := f.GetSheetName(0)
	for i, h := range tab.header {
		c, _ := excelize.CoordinatesToCellName(i+1, 1)
		f.SetCellValue(sheet, c, h)
	}
	for i, v := range rental {
		c, _ := excelize.CoordinatesToCellName(i+1, 2)
		if i == subjectCol {
			f.SetCellValue(sheet, c, 230102199207073453.0)
			continue
		}
		f.SetCellValue(sheet, c, v)
	}
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rejects) != 1 || rep.Rejects[0].Detail != hint {
		t.Errorf("rejects %v, want one saying %q", rep.Rejects, hint)
	}
}

// zeroedButValid returns an ID of the birth date and region of id that
// ends in 000 and passes its check character, as about 1 real ID in 1,100
// does, or "" if the sequence digit left free cannot make one.
func zeroedButValid(id string) string {
	for d := '0'; d <= '9'; d++ {
		v := id[:14] + string(d) + "00"
		if citizenid.CheckChar(v) == '0' {
			return v + "0"
		}
	}
	return ""
}

// TestExcelZeroedIDs: an ID column that went through Excel as numbers and
// was saved as CSV holds each ID as its first 15 digits and 000. A line
// whose ID fails its check character so says the column went through
// Excel; and since the IDs that pass it (1 in 11) are other persons', a
// column with far more IDs ending in 000 than a register has refuses the
// file, naming the column, the count and the fix: nothing sent, in a dry
// run, validating first or streaming, and every such line rejected. Real
// IDs ending in 000, a few in a file or one person's on several lines,
// are sent.
func TestExcelZeroedIDs(t *testing.T) {
	m, tab, rental := rentalRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	subjectCol := colIndex(t, tab, "权利人身份证号")
	for _, tc := range []struct {
		name, id string
		detail   string // "" for none
	}{
		{"the check fails", rental[subjectCol][:15] + "000", zeroedIDDetail},
		{"the check passes", zeroedButValid(rental[subjectCol]), ""},
	} {
		t.Run("one line, "+tc.name, func(t *testing.T) {
			if tc.id == "" || (tc.detail == "") != (citizenid.CheckChar(tc.id[:17]) == '0') {
				t.Fatal("the population has no such ID: pick another line")
			}
			cells := append([]string(nil), rental...)
			cells[subjectCol] = tc.id
			got := p.mapRow(2, cells, nil, time.Now())
			switch {
			case tc.detail == "" && got.rej != nil:
				t.Errorf("reject %v, want the line valid", got.rej)
			case tc.detail != "" && (got.rej == nil || got.rej.Reason != schemas.ReasonInvalidSubject || got.rej.Detail != tc.detail):
				t.Errorf("reject %v, want invalid_subject saying %q", got.rej, tc.detail)
			}
		})
	}

	_, full, _ := housingRows(t, 200)
	n := len(full.rows)
	zeroed := func(ids func(i int, id string) string) table {
		out := table{header: full.header}
		for i, r := range full.rows {
			r = append([]string(nil), r...)
			r[subjectCol] = ids(i, r[subjectCol])
			out.rows = append(out.rows, r)
		}
		return out
	}
	const good = 100
	// Three persons whose zeroed IDs fail their check, fail it, and pass
	// it (as another person's ID): a small register that went through Excel.
	var fewPersons []string
	for _, r := range full.rows {
		z := r[subjectCol][:15] + "000"
		switch {
		case len(fewPersons) < 2 && citizenid.CheckChar(z[:17]) != '0' && !slices.Contains(fewPersons, z):
			fewPersons = append(fewPersons, z)
		case len(fewPersons) == 2:
			if v := zeroedButValid(r[subjectCol]); v != "" {
				fewPersons = append(fewPersons, v)
			}
		}
	}
	if len(fewPersons) != 3 {
		t.Fatal("the population lacks three such persons")
	}
	for _, tc := range []struct {
		name          string
		tab           table
		dryRun        bool
		stream        bool
		refused       bool
		valid, zeroes int // valid lines; lines rejected as zeroed by Excel
	}{
		{"every ID zeroed, dry run", zeroed(func(_ int, id string) string { return id[:15] + "000" }), true, false, true, 0, n},
		{"every ID zeroed", zeroed(func(_ int, id string) string { return id[:15] + "000" }), false, false, true, 0, n},
		{"every ID zeroed, streamed", zeroed(func(_ int, id string) string { return id[:15] + "000" }), false, true, true, -1, -1},
		{"zeroed from line 102 on, the first passing its check", zeroed(func(i int, id string) string {
			switch {
			case i < good:
				return id
			case i == good:
				if v := zeroedButValid(id); v != "" {
					return v
				}
			}
			return id[:15] + "000"
		}), false, false, true, good, n - good},
		{"three persons on many lines each, all zeroed, one passing its check", zeroed(func(i int, id string) string {
			return fewPersons[i%3]
		}), true, false, true, 0, n},
		{"one person's real ID ending in 000, on the first three lines", zeroed(func(i int, id string) string {
			if i < 3 {
				return zeroedButValid(full.rows[0][subjectCol])
			}
			return id
		}), false, false, false, n, 0},
		{"three real IDs ending in 000", zeroed(func(i int, id string) string {
			if v := zeroedButValid(id); v != "" && (i == n/3 || i == 2*n/3 || i == n-1) {
				return v
			}
			return id
		}), false, false, false, n, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name[0] == 'z' && citizenid.CheckChar(tc.tab.rows[good][subjectCol][:17]) != '0' {
				t.Fatal("the first ID ending in 000 fails its check")
			}
			file := tempFile(t, "housing.csv")
			writeCSV(t, file, tc.tab, gbk)
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}, DryRun: tc.dryRun, Stream: tc.stream, ListRejects: n})
			if !tc.refused {
				if err != nil || rep.Valid != tc.valid || rep.Rejected != 0 {
					t.Fatalf("%v: %d valid, %d rejected (%v); want %d valid", err, rep.Valid, rep.Rejected, rep.Rejects, tc.valid)
				}
				return
			}
			if !errors.Is(err, ErrExcelIDs) {
				t.Fatalf("error %v, want ErrExcelIDs", err)
			}
			for _, want := range []string{"column 权利人身份证号", "end in 000", "Excel", "the column as text"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if tc.stream && !strings.Contains(err.Error(), "none of them with an ID ending in 000") {
				t.Errorf("error %q does not say whether a line ending in 000 went out", err)
			}
			if got := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); got != 0 || rep.Sent != 0 {
				t.Errorf("%d sent, %d records on the topic; want none", rep.Sent, got)
			}
			if tc.valid < 0 {
				return // a streamed import stops where the census trips
			}
			excel := 0
			for i, r := range rep.Rejects {
				if strings.Contains(r.Detail, "Excel") {
					excel++
				}
				if i > 0 && r.Line <= rep.Rejects[i-1].Line {
					t.Errorf("rejects out of line order: %v after %v", r, rep.Rejects[i-1])
				}
			}
			if rep.Valid != tc.valid || rep.Rejected != tc.zeroes || excel != tc.zeroes {
				t.Errorf("%d valid, %d rejected, %d of them saying Excel; want %d valid, %d rejected saying Excel (%v)", rep.Valid, rep.Rejected, excel, tc.valid, tc.zeroes, rep.Rejects)
			}
		})
	}
}

// TestLongNumberCells: a workbook number of more than 15 digits in a
// column that is not kind number (an 18-digit 业务编号 or 租赁合同编号 kept
// as a number) lost its last digits to Excel, so two leases may hold one
// value. It is rejected, saying so and how to fix the column, before an
// event id is derived from it; as text, or of 15 digits, it is read as is.
func TestLongNumberCells(t *testing.T) {
	m, tab, rental := rentalRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, column, value string
		kind                cellKind
		field               string // "" for no reject
	}{
		{"the record key", "业务编号", "230102202600000000", numberCell, "id"},
		{"the record key in E notation", "业务编号", "2.301022026E+17", numberCell, "id"},
		{"a data field", "租赁合同编号", "230102202600000000", numberCell, "data.lease_id"},
		{"the version", "版本号", "1000000000000000", numberCell, "id"},
		{"the record key as text", "业务编号", "230102202600000001", textCell, ""},
		{"a 15-digit record key", "业务编号", "230102202600001", numberCell, ""},
		{"a 15-digit data field", "租赁合同编号", "230102202600001", numberCell, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := colIndex(t, tab, tc.column)
			cells := append([]string(nil), rental...)
			cells[col] = tc.value
			kinds := make([]cellKind, len(cells))
			kinds[col] = tc.kind
			got := p.mapRow(2, cells, kinds, time.Now())
			switch {
			case tc.field == "" && got.rej != nil:
				t.Errorf("reject %v, want the line valid", got.rej)
			case tc.field == "":
			case got.rej == nil || got.rej.Reason != ReasonInvalidValue || got.rej.Field != tc.field || got.rej.Column != tc.column || !strings.HasSuffix(got.rej.Detail, longNumberDetail):
				t.Errorf("reject %v, want invalid_value of %s in %s saying %q", got.rej, tc.field, tc.column, longNumberDetail)
			}
		})
	}

	// Two leases numbered 230102202600000001 and …0002, which Excel holds
	// as one double: neither is sent, nor is the second called a
	// correction of the first.
	_, full, _ := housingRows(t, 200)
	var rentals [][]string
	for _, r := range full.rows {
		if r[colIndex(t, full, "业务类型")] == "租赁登记备案" && len(rentals) < 2 {
			rentals = append(rentals, r)
		}
	}
	if len(rentals) < 2 {
		t.Fatal("fewer than two rental registrations in the population")
	}
	key, lease := colIndex(t, full, "业务编号"), colIndex(t, full, "租赁合同编号")
	f := excelize.NewFile()
	defer f.Close()
	sheet := f.GetSheetName(0)
	for i, h := range full.header {
		c, _ := excelize.CoordinatesToCellName(i+1, 1)
		f.SetCellValue(sheet, c, h)
	}
	for r, n := range []float64{230102202600000001, 230102202600000002} {
		for i, v := range rentals[r] {
			c, _ := excelize.CoordinatesToCellName(i+1, r+2)
			if i == key || i == lease {
				f.SetCellValue(sheet, c, n)
				continue
			}
			f.SetCellValue(sheet, c, v)
		}
	}
	file := tempFile(t, "leases.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Valid != 0 || rep.Rejected != 2 || rep.Repeated != 0 {
		t.Fatalf("%d valid, %d rejected, %d repeated (%v); want both leases rejected", rep.Valid, rep.Rejected, rep.Repeated, rep.Rejects)
	}
	for _, r := range rep.Rejects {
		if !strings.HasSuffix(r.Detail, longNumberDetail) {
			t.Errorf("reject %v, want one saying %q", r, longNumberDetail)
		}
	}
}

// TestDefaultLayouts: without a layout, the time column takes every form
// a date column does (a date alone is midnight, China time), and a date
// column takes the zone-less date-and-time forms the time column does,
// keeping the date.
func TestDefaultLayouts(t *testing.T) {
	shanghai, err := location("")
	if err != nil {
		t.Fatal(err)
	}
	dates := []string{"2026-03-01", "2026-3-1", "2026/3/1", "2026/03/01", "20260301", "2026年3月1日", "2026.3.1"}
	times := []string{"2026-03-01 09:00:00", "2026-03-01T09:00:00", "2026/03/01 09:00:00", "2026/3/1 9:00", "2026-3-1 09:00:00",
		"2026-03-01 09:00", "20260301090000", "2026年3月1日 09:00:00", "2026.3.1 09:00:00"}
	for _, v := range dates {
		at, ok := parseTime(v, timeLayouts, shanghai)
		if want := time.Date(2026, 3, 1, 0, 0, 0, 0, shanghai); !ok || !at.Equal(want) {
			t.Errorf("time %q: %v %v, want %v", v, at, ok, want)
		}
	}
	for _, v := range times {
		at, ok := parseTime(v, timeLayouts, shanghai)
		if want := time.Date(2026, 3, 1, 9, 0, 0, 0, shanghai); !ok || !at.Equal(want) {
			t.Errorf("time %q: %v %v, want %v", v, at, ok, want)
		}
	}
	for _, v := range append(dates, times...) {
		d, ok := parseTime(v, dateLayouts, time.UTC)
		if !ok || d.Format(time.DateOnly) != "2026-03-01" {
			t.Errorf("date %q: %v %v, want 2026-03-01", v, d, ok)
		}
	}
}

// TestMissingColumns: a header that lacks columns says which, each once,
// shows the row that was read, and, when none of the mapping's columns is
// in it, which row holds them.
func TestMissingColumns(t *testing.T) {
	m, tab, _ := housingRows(t, 30)
	var header []string
	for _, h := range tab.header {
		if h != "租期止" {
			header = append(header, h)
		}
	}
	_, err := newPlan(m, header)
	if err == nil {
		t.Fatal("no error for a missing column")
	}
	msg := err.Error()
	if n := strings.Count(msg, `column "租期止" is not in the header`); n != 1 {
		t.Errorf("the missing column is named %d times:\n%s", n, msg)
	}
	if !strings.Contains(msg, "row 1 of the file reads: "+strings.Join(header, ", ")) {
		t.Errorf("the error does not show the header read:\n%s", msg)
	}
	if strings.Contains(msg, "header_row") {
		t.Errorf("the error suggests header_row though the header was found:\n%s", msg)
	}

	// A workbook with a title above the header, and the shipped mapping.
	em := mustMapping(t, schemas.Employment)
	etab, _ := render(t, em, population(t, 50, schemas.Employment))
	file := tempFile(t, "employment.xlsx")
	writeXLSX(t, file, etab)
	_, err = Run(context.Background(), Config{Source: schemas.Employment, File: file, Mapping: em, DryRun: true})
	if err == nil {
		t.Fatal("no error for a title row read as the header")
	}
	msg = err.Error()
	if !strings.Contains(msg, "header_row: 2") {
		t.Errorf("the error does not suggest header_row: 2:\n%s", msg)
	}
	if !strings.Contains(msg, "row 1 of the file reads: (10 chars)") || strings.Contains(msg, "导出数据") {
		t.Errorf("the error does not show the title row read by its length alone:\n%s", msg)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(msg, "\n") {
		if seen[l] {
			t.Errorf("the error says %q twice:\n%s", l, msg)
		}
		seen[l] = true
	}
}

// TestHeaderErrorQuotesNoPersonalData: a row of data read as the header (a
// file exported without one) is shown without its names, addresses or IDs,
// only the mapping's column names it holds and the others' lengths.
func TestHeaderErrorQuotesNoPersonalData(t *testing.T) {
	row := []string{"HJ2026000101", "户口登记", "230102199001011230", "张伟国", "男", "19900101", "汉族",
		"黑龙江省哈尔滨市道里区安静街12号", "230102001001", "H0001", "户主", "出生登记", "2026-03-01 09:00:00", "13904511234"}
	_, err := newPlan(mustMapping(t, schemas.PublicSecurity), row)
	if err == nil {
		t.Fatal("no header error")
	}
	for _, pii := range []string{"张伟国", "安静街", "230102199001011230", "13904511234", "19900101"} {
		if strings.Contains(err.Error(), pii) {
			t.Errorf("the header error quotes %q:\n%s", pii, err)
		}
	}
	if !strings.Contains(err.Error(), "row 1 of the file reads: (12 chars), (4 chars), (18 chars), (3 chars)") {
		t.Errorf("the header error does not show the row's cells by length:\n%s", err)
	}
}

// TestNumberSeparators: a comma in a number is read only as a thousands
// separator; a decimal comma ("89,5", as typed in much of Europe and by
// some input methods) is refused, not read as 895. Excel serial day
// numbers read the same way. The detail does not quote the cell (the
// rejects file holds the line).
func TestNumberSeparators(t *testing.T) {
	const decimalComma = "a comma is read only as a thousands separator (1,234.5): write the decimal point as ."
	for _, tc := range []struct {
		value  string
		want   string // the JSON number, or "" when refused
		detail string
	}{
		{"89.5", "89.5", ""},
		{"1,234", "1234", ""},
		{"1,234.5", "1234.5", ""},
		{"-12,345,678.25", "-12345678.25", ""},
		{"+1,000", "1000", ""},
		{"89,5", "", decimalComma},
		{"1,23", "", decimalComma},
		{"1234,567", "", decimalComma},
		{",5", "", decimalComma},
		{"1,,000", "", decimalComma},
		{"abc", "", "not a number"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			c := column{name: "area_m2", col: 0, kind: KindNumber}
			got, set, _, err := c.appendValue(nil, []string{tc.value}, nil, false)
			switch {
			case tc.want != "" && (err != nil || !set || string(got) != tc.want):
				t.Errorf("%s (%v), want %s", got, err, tc.want)
			case tc.want == "" && (err == nil || err.reason != ReasonInvalidValue || err.detail != tc.detail):
				t.Errorf("%s (%v), want invalid_value %q", got, err, tc.detail)
			}
		})
	}
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"45,352", true},
		{"45352.5", true},
		{"45,35", false},
		{"4,5352", false},
	} {
		if _, ok := excelDate(tc.value, false, time.UTC); ok != tc.ok {
			t.Errorf("excelDate(%q) ok %v, want %v", tc.value, ok, tc.ok)
		}
	}
}

// TestDuplicateColumns: a column the mapping reads that is in the header
// twice (an export that appends a corrected 版本号 at the end) is refused,
// naming the column and where it is, rather than read from one of the two
// by guess; a duplicate column the mapping does not read is no matter.
func TestDuplicateColumns(t *testing.T) {
	m, tab, rental := rentalRow(t)
	t.Run("a mapped column", func(t *testing.T) {
		header := append(append([]string(nil), tab.header...), "版本号")
		_, err := newPlan(m, header)
		want := fmt.Sprintf(`id.version: column "版本号" is in the header twice, as columns %d and %d`, colIndex(t, tab, "版本号")+1, len(header))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want one saying %q", err, want)
		}
		if strings.Contains(err.Error(), "header_row") {
			t.Errorf("the error suggests header_row:\n%s", err)
		}

		file := tempFile(t, "housing.csv")
		writeCSV(t, file, table{header: header, rows: [][]string{append(rental, "2")}}, gbk)
		if _, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run: %v, want an error saying %q", err, want)
		}
	})
	t.Run("a column the mapping does not read", func(t *testing.T) {
		header := append(append([]string(nil), tab.header...), "备注", "备注")
		if _, err := newPlan(m, header); err != nil {
			t.Errorf("a duplicate unmapped column is refused: %v", err)
		}
	})
}

// TestEventIDsKeepsEventsAcrossBlocks: the earlier event of a reused id is
// given back as it was wherever it was kept, in the first block, past a
// block's end or as one larger than a block, so that the reject can name
// the fields that changed.
func TestEventIDsKeepsEventsAcrossBlocks(t *testing.T) {
	s := newEventIDs()
	value := func(i int) []byte {
		n := 3000
		if i == 700 {
			n = keptBlock + 10 // larger than a block
		}
		return bytes.Repeat([]byte{byte('a' + i%26)}, n)
	}
	const lines = 1000 // about three blocks of events
	for i := range lines {
		if d, dup := s.add(fmt.Sprint("id-", i), i+1, value(i)); dup {
			t.Fatalf("line %d: a new id taken as a duplicate of line %d", i+1, d.first)
		}
	}
	if len(s.kept) < 3 {
		t.Fatalf("%d blocks kept; the test needs at least 3", len(s.kept))
	}
	for _, i := range []int{0, 349, 350, 700, lines - 1} {
		d, dup := s.add(fmt.Sprint("id-", i), lines+1, []byte("other"))
		switch {
		case !dup || d.first != i+1 || d.same:
			t.Errorf("id of line %d again: %+v, %v; want a duplicate of line %d with other content", i+1, d, dup, i+1)
		case !bytes.Equal(d.prev, value(i)):
			t.Errorf("id of line %d again: the earlier event given back is %d bytes, not the %d kept", i+1, len(d.prev), len(value(i)))
		}
		if d, _ := s.add(fmt.Sprint("id-", i), lines+2, value(i)); !d.same {
			t.Errorf("id of line %d with the same event is not taken as the same", i+1)
		}
	}
}

// TestMonthCells: a month column on the default layouts takes the month
// forms, and a date on the first of a month as that month (exports that
// keep months in date columns write 2026-03-01, or in timestamps with
// midnight); another day or time is refused saying so, and a month column with a layout of its own takes only that.
func TestMonthCells(t *testing.T) {
	const notFirst = "a date, not a month: only the first day of a month (2026-03-01, or 2026-03-01 00:00:00) is read as its month"
	for _, tc := range []struct {
		value, layout string
		want          string // the JSON string, or "" when refused
		detail        string // the reject detail, when refused ("" for any)
	}{
		{"2026-03", "", `"2026-03"`, ""},
		{"2026/3", "", `"2026-03"`, ""},
		{"202603", "", `"2026-03"`, ""},
		{"2026年3月", "", `"2026-03"`, ""},
		{"2026-03-01", "", `"2026-03"`, ""},
		{"2026/3/1", "", `"2026-03"`, ""},
		{"20260301", "", `"2026-03"`, ""},
		{"2026年3月1日", "", `"2026-03"`, ""},
		{"2026-03-01 00:00:00", "", `"2026-03"`, ""},
		{"2026/3/1 0:00", "", `"2026-03"`, ""},
		{"2026-03-01 08:30:00", "", "", notFirst},
		{"2026-03-15", "", "", notFirst},
		{"2026年3月31日", "", "", notFirst},
		{"2026-13", "", "", ""},
		{"2026-03-01", "2006-01", "", ""},
		{"03/2026", "01/2006", `"2026-03"`, ""},
	} {
		t.Run(tc.value+" "+tc.layout, func(t *testing.T) {
			c, err := newColumn("social_insurance.contribution_recorded", "month", Field{Column: "缴费月份", Kind: KindMonth, Layout: tc.layout},
				func(string, string) int { return 0 })
			if err != nil {
				t.Fatal(err)
			}
			got, set, _, cerr := c.appendValue(nil, []string{tc.value}, nil, false)
			switch {
			case tc.want != "" && (cerr != nil || !set || string(got) != tc.want):
				t.Errorf("%s (%v), want %s", got, cerr, tc.want)
			case tc.want == "" && (cerr == nil || cerr.reason != ReasonInvalidValue || tc.detail != "" && cerr.detail != tc.detail):
				t.Errorf("%s (%v), want invalid_value %q", got, cerr, tc.detail)
			}
		})
	}
}

// TestJSONLLegacyIDRejects: a JSONL line whose 15-digit IDs upgrade but
// which is bad otherwise is refused for what is wrong with it, as the same
// line with 18-digit IDs is, not for the length of the IDs.
func TestJSONLLegacyIDRejects(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	line := func(at, birth string) []byte {
		return []byte(`{"specversion":"1.0","id":"ps-1","source":"public_security","type":"hukou.registered","subject":"230102850101123",` +
			`"time":"` + at + `","data":{"name":"张三","gender":"1","birth_date":"` + birth + `","ethnicity":"01","address_code":"230102001001","household_id":"H1","reason":"birth"}}`)
	}
	for _, tc := range []struct {
		name          string
		text          []byte
		reason, field string
		upgraded      int
	}{
		{"upgraded and taken", line("1985-01-02T09:00:00+08:00", "1985-01-01"), "", "", 1},
		{"a time at the Unix epoch, before the birth", line("1970-01-01T00:00:00Z", "1985-01-01"), schemas.ReasonInvalidData, "time", 0},
		{"a birth date in the future", line("1985-01-02T09:00:00+08:00", "2099-01-01"), schemas.ReasonInvalidData, "data.birth_date", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := decodeLine(schemas.PublicSecurity, 1, tc.text, now)
			switch {
			case tc.reason == "" && m.rej != nil:
				t.Fatalf("refused: %s on %s: %s", m.rej.Reason, m.rej.Field, m.rej.Detail)
			case tc.reason != "" && (m.rej == nil || m.rej.Reason != tc.reason || m.rej.Field != tc.field):
				t.Fatalf("reject %+v, want %s on %s", m.rej, tc.reason, tc.field)
			}
			if m.upgraded != tc.upgraded {
				t.Errorf("upgraded %d IDs, want %d", m.upgraded, tc.upgraded)
			}
		})
	}
}
