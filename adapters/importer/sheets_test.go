package importer

import (
	"context"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/pophub/pophub/schemas"
)

// TestSheetWithoutName: with no sheet in the mapping, a workbook of
// several sheets is read from the sheet the clerk sees, its active one,
// never from a hidden one (last month's, hidden away), and the report
// names the sheet read. When the active sheet is hidden, the import is
// refused naming the visible sheets and how to choose one.
func TestSheetWithoutName(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 7)
	for _, tc := range []struct {
		name   string
		active int    // the active sheet: 0 is 2月, 1 is 3月
		hidden string // the hidden sheet
		read   int    // the lines read; 0 when refused
		sheet  string // the sheet read
		err    []string
	}{
		{name: "hidden first sheet, active second", active: 1, hidden: "2月", read: 4, sheet: "3月"},
		{name: "both visible, active first", active: 0, read: 3, sheet: "2月"},
		{name: "both visible, active second", active: 1, read: 4, sheet: "3月"},
		{name: "active sheet hidden", active: 0, hidden: "2月", err: []string{`"2月" is hidden`, "3月", "sheet: 3月"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := excelize.NewFile()
			f.SetSheetName("Sheet1", "2月")
			if _, err := f.NewSheet("3月"); err != nil {
				t.Fatal(err)
			}
			setSheetRow(t, f, "2月", 1, tab.header)
			setSheetRow(t, f, "3月", 1, tab.header)
			for i, r := range rows[:3] {
				setSheetRow(t, f, "2月", i+2, r)
			}
			for i, r := range rows[3:] {
				setSheetRow(t, f, "3月", i+2, r)
			}
			// excelize hides no selected sheet: hide, then select.
			f.SetActiveSheet(1)
			if tc.hidden != "" {
				if err := f.SetSheetVisible(tc.hidden, false); err != nil {
					t.Fatal(err)
				}
			}
			f.SetActiveSheet(tc.active)
			file := tempFile(t, "hukou.xlsx")
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, DryRun: true})
			if tc.err != nil {
				if err == nil {
					t.Fatalf("%s; want refused", rep.Summary())
				}
				for _, w := range tc.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q; want it to say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Read != tc.read || rep.Sheet != tc.sheet || !strings.Contains(rep.Summary(), "sheet "+tc.sheet) {
				t.Errorf("%s (sheet %q); want %d lines read of sheet %s, named in the summary", rep.Summary(), rep.Sheet, tc.read, tc.sheet)
			}
		})
	}
}

// TestHeaderInAnotherSheet: a workbook whose active sheet is instructions
// (填表说明) and whose data is on another sheet is refused naming the
// sheet read and the sheet that holds the mapping's columns, and how to
// choose it.
func TestHeaderInAnotherSheet(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 2)
	f := excelize.NewFile()
	f.SetSheetName("Sheet1", "填表说明")
	if _, err := f.NewSheet("户籍数据"); err != nil {
		t.Fatal(err)
	}
	setSheetRow(t, f, "填表说明", 1, []string{"1. 公民身份号码请设置为文本格式"})
	setSheetRow(t, f, "户籍数据", 1, []string{"户籍业务登记表"})
	setSheetRow(t, f, "户籍数据", 2, tab.header)
	for i, r := range rows {
		setSheetRow(t, f, "户籍数据", i+3, r)
	}
	file := tempFile(t, "hukou.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, DryRun: true})
	if err == nil {
		t.Fatal("imported the instructions sheet")
	}
	for _, w := range []string{"sheet 填表说明", `sheet "户籍数据" has them in row 2`, "sheet: 户籍数据", "header_row: 2"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q; want it to say %q", err, w)
		}
	}
}
