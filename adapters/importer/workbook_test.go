package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestWorkbookDecimalMonth: a contribution month typed 2026.10 in a
// workbook is the number 2026.1 to Excel, which a 0.00 format still shows
// as 2026.10. A clerk relies on such a number being refused as ambiguous,
// never read as January; a number that can be only one month (2026.3,
// 202610) is read as that month.
func TestWorkbookDecimalMonth(t *testing.T) {
	m, tab, row := contribution(t)
	mc := colIndex(t, tab, "缴费月份")
	for _, tc := range []struct {
		name   string
		value  float64
		format string
		want   string // the month sent, or "" when refused
	}{
		{"2026.10 shown with two decimals", 2026.10, "0.00", ""},
		{"2026.1 shown as typed", 2026.1, "General", ""},
		{"2026.3", 2026.3, "General", "2026-03"},
		{"2026.12", 2026.12, "0.00", "2026-12"},
		{"202610", 202610, "0", "2026-10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := excelize.NewFile()
			setSheetRow(t, f, "Sheet1", 1, tab.header)
			setSheetRow(t, f, "Sheet1", 2, row)
			ref, _ := excelize.CoordinatesToCellName(mc+1, 2)
			f.SetCellValue("Sheet1", ref, tc.value)
			st, err := f.NewStyle(&excelize.Style{CustomNumFmt: &tc.format})
			if err != nil {
				t.Fatal(err)
			}
			f.SetCellStyle("Sheet1", ref, ref, st)
			file := tempFile(t, "si.xlsx")
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.SocialInsurance, File: file, Mapping: m, Brokers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			evs := decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.SocialInsurance)))
			if tc.want == "" {
				for _, ev := range evs {
					var d map[string]any
					json.Unmarshal(ev.Data, &d)
					t.Errorf("sent month %v; want the line refused", d["month"])
				}
				if rep.Rejected != 1 || rep.Rejects[0].Field != "data.month" || rep.Rejects[0].Detail != decimalMonthDetail {
					t.Errorf("%s %v; want the line rejected on data.month as ambiguous", rep.Summary(), rep.Rejects)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("%s %v; want the line sent", rep.Summary(), rep.Rejects)
			}
			var d map[string]any
			json.Unmarshal(evs[0].Data, &d)
			if d["month"] != tc.want {
				t.Errorf("sent month %v, want %s", d["month"], tc.want)
			}
		})
	}
}

// TestWorkbookRejectsReimport: a workbook line rejected for its ID is
// copied to F.rejects.csv; a clerk relies on correcting the ID there and
// importing that file with the same mapping. The workbook's date cells
// (a date and time, dates, a date kept as a plain serial number) are
// written in the mapping's layouts, so that the corrected line is valid,
// and the ID with a leading apostrophe, so that opening and saving the
// file in Excel keeps its digits.
func TestWorkbookRejectsReimport(t *testing.T) {
	m, tab, rental := rentalRow(t)
	f := excelize.NewFile()
	sheet := f.GetSheetName(0)
	dateTime, _ := f.NewStyle(&excelize.Style{NumFmt: 22})
	date, _ := f.NewStyle(&excelize.Style{NumFmt: 14})
	serial := func(wall, layout string) float64 {
		w, err := time.Parse(layout, wall)
		if err != nil {
			t.Fatal(err)
		}
		return float64(w.Sub(time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC))) / float64(24*time.Hour)
	}
	timeCol, sc := colIndex(t, tab, "登记时间"), colIndex(t, tab, "权利人身份证号")
	startCol, endCol := colIndex(t, tab, "租期起"), colIndex(t, tab, "租期止")
	setSheetRow(t, f, sheet, 1, tab.header)
	good := rental[sc]
	bad := good[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", good[17])+1)%11])
	for i, v := range rental {
		c, _ := excelize.CoordinatesToCellName(i+1, 2)
		switch {
		case i == timeCol:
			f.SetCellValue(sheet, c, serial(v, "2006-01-02 15:04:05"))
			f.SetCellStyle(sheet, c, c, dateTime)
		case i == startCol:
			f.SetCellValue(sheet, c, serial(v, "2006/1/2"))
			f.SetCellStyle(sheet, c, c, date)
		case i == endCol: // a date kept as a number (General)
			f.SetCellValue(sheet, c, serial(v, "2006/1/2"))
		case i == sc:
			f.SetCellValue(sheet, c, bad)
		default:
			f.SetCellValue(sheet, c, v)
		}
	}
	file := tempFile(t, "housing.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
	if err != nil || rep.Rejected != 1 {
		t.Fatalf("%v; %s: want the line rejected for its ID", err, rep.Summary())
	}
	rb, err := os.ReadFile(rep.RejectsFile)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(rb), bom))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	const lead = 5 // line, reason, field, column, detail
	for col, want := range map[int]string{timeCol: rental[timeCol], startCol: rental[startCol], endCol: rental[endCol], sc: "'" + bad} {
		if got := recs[1][lead+col]; got != want {
			t.Errorf("rejects file: column %s holds %q, want %q", tab.header[col], got, want)
		}
	}
	recs[1][lead+sc] = "'" + good // the clerk's correction
	var buf bytes.Buffer
	buf.WriteString(bom)
	w := csv.NewWriter(&buf)
	w.WriteAll(recs)
	fixed := rep.RejectsFile
	if err := os.WriteFile(fixed, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = Run(context.Background(), Config{Source: schemas.Housing, File: fixed, Mapping: m, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Valid != 1 {
		t.Errorf("the corrected rejects file: %s %v; want the corrected line valid", rep.Summary(), rep.Rejects)
	}
}

// TestTwoRowMergedHeader: a form's header of two rows, most names merged
// down over both and 租期 merged across its 起 and 止 in the second, as
// county offices draw them. A clerk relies on header_row: 2 reading the
// merged names in the second row, as a merged range's value is read in
// every row it spans.
func TestTwoRowMergedHeader(t *testing.T) {
	m, tab, rental := rentalRow(t)
	s, e := colIndex(t, tab, "租期起"), colIndex(t, tab, "租期止")
	var header, cells []string
	for i, h := range tab.header {
		if i != s && i != e {
			header, cells = append(header, h), append(cells, rental[i])
		}
	}
	// 租期起 and 租期止 side by side, last.
	header, cells = append(header, "租期起", "租期止"), append(cells, rental[s], rental[e])
	f := excelize.NewFile()
	sh := "Sheet1"
	n := len(header)
	for i, h := range header {
		c1, _ := excelize.CoordinatesToCellName(i+1, 1)
		c2, _ := excelize.CoordinatesToCellName(i+1, 2)
		if i >= n-2 {
			f.SetCellValue(sh, c2, h)
			continue
		}
		f.SetCellValue(sh, c1, h)
		if err := f.MergeCell(sh, c1, c2); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := excelize.CoordinatesToCellName(n-1, 1)
	b, _ := excelize.CoordinatesToCellName(n, 1)
	f.SetCellValue(sh, a, "租期")
	if err := f.MergeCell(sh, a, b); err != nil {
		t.Fatal(err)
	}
	setSheetRow(t, f, sh, 3, cells)
	file := tempFile(t, "housing.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	mm := *m
	mm.HeaderRow = 2
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: &mm, DryRun: true})
	if err != nil {
		t.Fatalf("header_row 2 of a two-row header: %v", err)
	}
	if rep.Valid != 1 {
		t.Errorf("%s %v; want the line valid", rep.Summary(), rep.Rejects)
	}
}

// TestMergedHeaderFillsNoDataRow: a range merged down from the header
// into the data rows fills the header's rows with its name, and no data
// row: a name is no value.
func TestMergedHeaderFillsNoDataRow(t *testing.T) {
	m := &merges{ranges: []mergedRange{{top: 1, bottom: 3, left: 0, right: 0}, {top: 3, bottom: 4, left: 1, right: 1}}}
	rows := [][]string{{"备注", "户号"}, {"", "户号"}, {"", "H1"}, {"", ""}}
	for i, r := range rows[:2] {
		m.fill(i+1, r, nil)
	}
	m.endHeader()
	for i, r := range rows[2:] {
		m.fill(i+3, r, nil)
	}
	want := [][]string{{"备注", "户号"}, {"备注", "户号"}, {"", "H1"}, {"", "H1"}}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("filled %q, want %q", rows, want)
	}
}

// TestTitleWiderThanHeader: a title row above a header in row 2 that
// reaches further right than the header (a 制表日期 cell past its last
// column, a title merged across) leaves the header its own width. A
// clerk relies on the lines having the event ids they have without the
// title, so that importing them again sends nothing twice, and on a
// value past the header's last column being refused, not read.
func TestTitleWiderThanHeader(t *testing.T) {
	m := mustMapping(t, schemas.SocialInsurance) // no key: an id hashes every cell
	tab, _ := render(t, m, population(t, 5, schemas.SocialInsurance))
	rows := tab.rows[:4]
	n := len(tab.header)
	write := func(title bool, extra []string) string {
		f := excelize.NewFile()
		top := 1
		if title {
			f.SetCellValue("Sheet1", "A1", "2026年3月社保经办台账")
			if err := f.MergeCell("Sheet1", "A1", "C1"); err != nil {
				t.Fatal(err)
			}
			date, _ := excelize.CoordinatesToCellName(n+2, 1)
			f.SetCellValue("Sheet1", date, "制表日期：2026-04-01")
			top = 2
		}
		for i, r := range append([][]string{tab.header}, append(rows, extra)...) {
			if r != nil {
				setSheetRow(t, f, "Sheet1", top+i, r)
			}
		}
		file := tempFile(t, "si.xlsx")
		if err := f.SaveAs(file); err != nil {
			t.Fatal(err)
		}
		return file
	}
	ids := func(file string, headerRow int) []string {
		s, err := openXLSX(file, sheetChoice{}, headerRow)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if len(s.header()) != n {
			t.Errorf("header of %d columns, want the header's own %d", len(s.header()), n)
		}
		p, err := newPlan(m, s.header())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for {
			r, err := s.next()
			if err != nil {
				break
			}
			if r.malformed != "" {
				out = append(out, r.malformed)
				continue
			}
			out = append(out, p.mapRow(r.line, r.cells, r.kinds, time.Now()).id)
		}
		return out
	}
	beyond := append(slices.Clone(rows[0]), "", "备注")
	plain := ids(write(false, beyond), 1)
	titled := ids(write(true, beyond), 2)
	if !slices.Equal(plain, titled) {
		t.Errorf("below a wider title the lines read %q, want %q as without it", titled, plain)
	}
	if last := titled[len(titled)-1]; !strings.Contains(last, fmt.Sprintf("beyond the header's %d", n)) {
		t.Errorf("a value past the header's last column read as %q, want it refused", last)
	}
}

// TestHeaderMergedDownLast: a name merged down over a two-row header in
// the last column, which Excel leaves out of the second row, is read in
// it.
func TestHeaderMergedDownLast(t *testing.T) {
	f := excelize.NewFile()
	setSheetRow(t, f, "Sheet1", 1, []string{"租期", "", "备注"})
	setSheetRow(t, f, "Sheet1", 2, []string{"起", "止"})
	setSheetRow(t, f, "Sheet1", 3, []string{"2026-01-01", "2026-12-31", "续租"})
	for _, r := range [][2]string{{"A1", "B1"}, {"C1", "C2"}} {
		if err := f.MergeCell("Sheet1", r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	file := tempFile(t, "housing.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	s, err := openXLSX(file, sheetChoice{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := []string{"起", "止", "备注"}; !slices.Equal(s.header(), want) {
		t.Errorf("header %q, want %q", s.header(), want)
	}
}

// TestFormHeaderKeepsIDs: a form laid out with 序号 and 备注 merged down
// over a two-row header, the mapping's names in row 2 below a group title
// (header_row: 2) and 备注 left empty, gives its lines the event ids
// pophub has always given them: a name merged down past the header row's
// cells widens the header, not the ids, so a resume or the same form
// imported again sends nothing the hub does not recognise. The ids are
// pinned: they must never change.
func TestFormHeaderKeepsIDs(t *testing.T) {
	si := []string{"参保登记", "230604198401270165", "2010-02-28 09:20:00", "养老保险、医疗保险、失业保险、工伤保险", "", "230603", "职工", "2010-02-28", "", ""}
	n := len(siHeader)
	f := excelize.NewFile()
	top := make([]string, n+2)
	top[0], top[1], top[n+1] = "序号", "参保缴费明细", "备注"
	setSheetRow(t, f, "Sheet1", 1, top)
	setSheetRow(t, f, "Sheet1", 2, append([]string{""}, siHeader...))
	setSheetRow(t, f, "Sheet1", 3, append([]string{"1"}, si...))
	group, _ := excelize.CoordinatesToCellName(n+1, 1)
	note, _ := excelize.CoordinatesToCellName(n+2, 1)
	note2, _ := excelize.CoordinatesToCellName(n+2, 2)
	for _, r := range [][2]string{{"A1", "A2"}, {"B1", group}, {note, note2}} {
		if err := f.MergeCell("Sheet1", r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	file := tempFile(t, "si.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	m := mustMapping(t, schemas.SocialInsurance)
	m.HeaderRow = 2
	src, p, err := open(&Config{Source: schemas.SocialInsurance, Format: XLSX, File: file, Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := src.next()
	if err != nil {
		t.Fatal(err)
	}
	got := p.mapRow(r.line, r.cells, r.kinds, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if got.rej != nil {
		t.Fatal(got.rej)
	}
	if want := "social_insurance-6913c9c7d63384de469a3eb8-8000000000000000"; got.id != want {
		t.Errorf("event id %s, want %s as always", got.id, want)
	}
}

// TestWorkbookRejectsAmbiguousMonth: a contribution month typed 2026.10
// in a workbook, the number 2026.1 that a 0.00 format shows as 2026.10,
// is refused as ambiguous. A clerk relies on its line in the rejects file
// showing the month as still to be decided, not as January, so that the
// file imported again without correcting it refuses the line again.
func TestWorkbookRejectsAmbiguousMonth(t *testing.T) {
	m, tab, row := contribution(t)
	mc := colIndex(t, tab, "缴费月份")
	f := excelize.NewFile()
	setSheetRow(t, f, "Sheet1", 1, tab.header)
	setSheetRow(t, f, "Sheet1", 2, row)
	ref, _ := excelize.CoordinatesToCellName(mc+1, 2)
	f.SetCellValue("Sheet1", ref, 2026.10)
	code := "0.00"
	st, _ := f.NewStyle(&excelize.Style{CustomNumFmt: &code})
	f.SetCellStyle("Sheet1", ref, ref, st)
	file := tempFile(t, "si.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Source: schemas.SocialInsurance, File: file, Mapping: m, DryRun: true})
	if err != nil || rep.Rejected != 1 {
		t.Fatalf("%v %s: want the ambiguous month refused", err, rep.Summary())
	}
	b, err := os.ReadFile(file + ".rejects.csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), bom))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(recs[0], "缴费月份"); recs[1][i] != "2026-10 or 2026-01" {
		t.Errorf("rejects file: 缴费月份 %q, want both months the cell may be", recs[1][i])
	}
	rep, err = Run(context.Background(), Config{Source: schemas.SocialInsurance, File: file + ".rejects.csv", Mapping: m, DryRun: true})
	if err != nil || rep.Valid != 0 || rep.Rejected != 1 {
		t.Errorf("the rejects file imported again: %v %s; want the line refused again", err, rep.Summary())
	}
}

// contribution returns the social_insurance mapping with the default
// month forms (2026.3 among them), its table, and a contribution's line
// handled 2026-11-15.
func contribution(t *testing.T) (*Mapping, table, []string) {
	t.Helper()
	m := mustMapping(t, schemas.SocialInsurance)
	month := m.DataByType[schemas.ContributionRecorded]["month"]
	month.Layout = ""
	m.DataByType[schemas.ContributionRecorded]["month"] = month
	tab, _ := render(t, m, population(t, 100, schemas.SocialInsurance))
	for _, r := range tab.rows {
		if r[colIndex(t, tab, "业务类型")] == "缴费记录" {
			row := slices.Clone(r)
			row[colIndex(t, tab, "经办时间")] = "2026-11-15 10:00:00"
			return m, tab, row
		}
	}
	t.Fatal("no contribution in the population")
	return nil, table{}, nil
}
