package importer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestWorkbookFormulaErrorCells: a workbook cell holding a formula's
// error (t="e": the #N/A of a VLOOKUP that found nothing, the #REF! of a
// deleted sheet) is no value of the department's. A clerk relies on such
// a line being rejected naming the column and the error, never sent: two
// persons whose 户号 lookup failed would otherwise share a household
// "#N/A".
func TestWorkbookFormulaErrorCells(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 3)
	hc, nc := colIndex(t, tab, "户号"), colIndex(t, tab, "姓名")
	f := excelize.NewFile()
	setSheetRow(t, f, "Sheet1", 1, tab.header)
	for i, r := range rows {
		setSheetRow(t, f, "Sheet1", i+2, r)
	}
	file := tempFile(t, "hukou.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hcol, _ := excelize.ColumnNumberToName(hc + 1)
	ncol, _ := excelize.ColumnNumberToName(nc + 1)
	errorCells := map[string]string{ // by cell: the error
		hcol + "2": "#N/A",
		hcol + "3": "#N/A",
		ncol + "4": "#REF!",
	}
	rewritePart(t, file, "xl/worksheets/sheet1.xml", func(s string) string {
		for ref, e := range errorCells {
			i := strings.Index(s, `<c r="`+ref+`"`)
			if i < 0 {
				t.Fatalf("no cell %s in the sheet", ref)
			}
			j := i + strings.Index(s[i:], "</c>") + len("</c>")
			s = s[:i] + `<c r="` + ref + `" t="e"><f>VLOOKUP(B2,户籍底册!A:C,3,0)</f><v>` + e + `</v></c>` + s[j:]
		}
		return s
	})
	addr := testenv.Kafka(t, partitions)
	rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity))) {
		var d map[string]any
		json.Unmarshal(ev.Data, &d)
		t.Errorf("sent %s with household_id %q, name %q; want every line rejected", ev.Type, d["household_id"], d["name"])
	}
	if rep.Rejected != 3 {
		t.Fatalf("%s; want the 3 lines with formula error cells rejected", rep.Summary())
	}
	want := map[int]struct{ field, column, e string }{
		2: {"data.household_id", "户号", "#N/A"},
		3: {"data.household_id", "户号", "#N/A"},
		4: {"data.name", "姓名", "#REF!"},
	}
	for _, r := range rep.Rejects {
		w := want[r.Line]
		if r.Reason != ReasonInvalidValue || r.Field != w.field || r.Column != w.column || !strings.HasPrefix(r.Detail, "the cell holds the formula error "+w.e+":") {
			t.Errorf("line %d: %s; want invalid_value on %s (column %s) naming %s", r.Line, r, w.field, w.column, w.e)
		}
	}
}

// TestFormulaErrorValues: a CSV file saved from a sheet holds a formula's
// error as its text (#N/A, #DIV/0!). In any mapped column, the subject,
// the time and the type among them, such a cell is rejected naming the
// error, not read as a value.
func TestFormulaErrorValues(t *testing.T) {
	m, tab, reg := registrationRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		column, value, field, reason string
	}{
		{"户号", "#N/A", "data.household_id", ReasonInvalidValue},
		{"姓名", "#REF!", "data.name", ReasonInvalidValue},
		{"出生日期", "#VALUE!", "data.birth_date", ReasonInvalidValue},
		{"住址区划代码", "#NAME?", "data.address_code", ReasonInvalidValue},
		{"公民身份号码", "#N/A", "subject", schemas.ReasonInvalidSubject},
		{"业务办理时间", "#DIV/0!", "time", ReasonInvalidValue},
		{"业务流水号", "#NUM!", "id", ReasonInvalidValue},
		{"业务类型", "#NULL!", "type", ReasonInvalidValue},
		{"户号", "#n/a", "data.household_id", ReasonInvalidValue}, // typed by hand
	} {
		t.Run(tc.column+" "+tc.value, func(t *testing.T) {
			cells := append([]string(nil), reg...)
			cells[colIndex(t, tab, tc.column)] = tc.value
			got := p.mapRow(2, cells, nil, time.Now())
			if got.rej == nil {
				t.Fatalf("mapped; want rejected on %s", tc.field)
			}
			if r := got.rej; r.Reason != tc.reason || r.Field != tc.field || r.Column != tc.column || !strings.HasPrefix(r.Detail, "the cell holds the formula error "+tc.value+":") {
				t.Errorf("%s; want %s on %s (column %s) naming %s", r, tc.reason, tc.field, tc.column, tc.value)
			}
		})
	}
}
