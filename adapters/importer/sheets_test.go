package importer

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestSheetWithoutName: with no sheet in the mapping, a workbook of
// several sheets is read from the sheet the clerk sees, its active one,
// never from a hidden one (last month's, hidden away), and the report
// names the sheet read. When the active sheet is hidden, the first
// visible sheet is read.
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
		{name: "active sheet hidden", active: 0, hidden: "2月", read: 4, sheet: "3月"},
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
	for _, w := range []string{"sheet 填表说明", `sheet "户籍数据" has them in row 2`, "sheet: 户籍数据", "header_row: 2", `visible sheets "填表说明", "户籍数据"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q; want it to say %q", err, w)
		}
	}
}

// TestSheetOpenWithoutHeader: a workbook saved while a sheet without the
// mapping's header was open (the blank Sheet2 and Sheet3 that Excel
// 2007–2010 and WPS add to a new workbook, a chart sheet, instructions)
// imports its data sheet, as it did when the first sheet was read, and
// the report names it.
func TestSheetOpenWithoutHeader(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 3)
	for _, tc := range []struct {
		name  string
		build func(f *excelize.File) // adds sheets beside Sheet1, which holds the data, and selects one
	}{
		{name: "blank Sheet2 open", build: func(f *excelize.File) {
			f.NewSheet("Sheet2")
			f.NewSheet("Sheet3")
			f.SetActiveSheet(1)
		}},
		{name: "chart sheet open", build: func(f *excelize.File) {
			f.SetCellValue("Sheet1", "Z1", 1)
			f.SetCellValue("Sheet1", "Z2", 2)
			chart := &excelize.Chart{Type: excelize.Col, Series: []excelize.ChartSeries{{Name: "Sheet1!$Z$1", Values: "Sheet1!$Z$1:$Z$2"}}}
			if err := f.AddChartSheet("统计图", chart); err != nil {
				t.Fatal(err)
			}
			i, _ := f.GetSheetIndex("统计图")
			f.SetActiveSheet(i)
		}},
		{name: "instructions first, open", build: func(f *excelize.File) {
			f.NewSheet("填表说明")
			setSheetRow(t, f, "填表说明", 1, []string{"1. 公民身份号码请设置为文本格式"})
			if err := f.MoveSheet("填表说明", "Sheet1"); err != nil {
				t.Fatal(err)
			}
			f.SetActiveSheet(0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := excelize.NewFile()
			setSheetRow(t, f, "Sheet1", 1, tab.header)
			for i, r := range rows {
				setSheetRow(t, f, "Sheet1", i+2, r)
			}
			tc.build(f)
			file := tempFile(t, "hukou.xlsx")
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Read != len(rows) || rep.Sheet != "Sheet1" || !strings.Contains(rep.Summary(), "sheet Sheet1") {
				t.Errorf("%s (sheet %q); want %d lines read of Sheet1, named in the summary", rep.Summary(), rep.Sheet, len(rows))
			}
		})
	}
}

// TestSheetNoneWithRows: a workbook whose visible sheets are all blank is
// refused naming them, not with a bare "no header row".
func TestSheetNoneWithRows(t *testing.T) {
	m, _, _ := hukouRegistrations(t, 1)
	f := excelize.NewFile()
	f.NewSheet("Sheet2")
	f.SetActiveSheet(1)
	file := tempFile(t, "hukou.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, DryRun: true})
	if err == nil || !strings.Contains(err.Error(), `"Sheet2", "Sheet1"`) || !strings.Contains(err.Error(), "sheet: NAME") {
		t.Errorf("error %v; want the sheets looked at named, and how to name one", err)
	}
}

// TestSheetResumeCheckpoint: an import of a workbook of two sheets of the
// same columns, saved while the second was open, stopped midway. A
// checkpoint written before checkpoints named the sheet, when the first
// sheet was read, is resumed on the first sheet: the user relies on
// every line of it being sent once, none skipped as already sent. A
// checkpoint naming another sheet than the one read now is set aside,
// saying so, and the sheet read is imported afresh, all of it.
func TestSheetResumeCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stream  bool
		legacy  bool   // the checkpoint names no sheet
		sheet   string // the sheet the last run reads
		aside   []string
		resumed bool
	}{
		{name: "checkpoint naming no sheet", legacy: true, sheet: "3月", resumed: true},
		{name: "checkpoint naming no sheet, streamed", legacy: true, stream: true, sheet: "3月", resumed: true},
		{name: "checkpoint naming another sheet", sheet: "2月", aside: []string{`sheet "3月"`, `sheet "2月"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, tab, rows := hukouRegistrations(t, 80)
			f := excelize.NewFile()
			f.SetSheetName("Sheet1", "3月")
			f.NewSheet("2月")
			for s, sheet := range []string{"3月", "2月"} {
				setSheetRow(t, f, sheet, 1, tab.header)
				for i, r := range rows[s*40 : s*40+40] {
					setSheetRow(t, f, sheet, i+2, r)
				}
			}
			f.SetActiveSheet(1) // saved while 2月 was open
			file := tempFile(t, "hukou.xlsx")
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			cfg := Config{Source: schemas.PublicSecurity, File: file, Mapping: m, Brokers: []string{addr}, BatchSize: 5, ChunkSize: 10,
				CheckpointInterval: time.Nanosecond, Stream: tc.stream}
			// The first run reads the first sheet, as pophub did before it
			// chose one, and stops after 20 lines.
			first := cfg
			first.firstSheet = true
			crash := errors.New("crash")
			first.hookOK = func(n int) error {
				if n < 2 {
					return nil
				}
				return crash
			}
			if _, err := Run(context.Background(), first); !errors.Is(err, crash) {
				t.Fatalf("first run: %v", err)
			}
			if tc.legacy {
				b, err := os.ReadFile(cfg.File + ".pophub-import.json")
				if err != nil {
					t.Fatal(err)
				}
				var ck map[string]any
				if err := json.Unmarshal(b, &ck); err != nil {
					t.Fatal(err)
				}
				delete(ck, "sheet")
				b, _ = json.Marshal(ck)
				if err := os.WriteFile(cfg.File+".pophub-import.json", b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sheet != tc.sheet || rep.Resumed != tc.resumed || rep.AlreadySent+rep.Sent != 40 {
				t.Errorf("last run: %s; resumed %v, set aside %q; want sheet %s resumed %v, its 40 lines sent", rep.Summary(), rep.Resumed, rep.SetAside, tc.sheet, tc.resumed)
			}
			for _, w := range tc.aside {
				if !strings.Contains(rep.SetAside, w) {
					t.Errorf("set aside %q; want it to say %q", rep.SetAside, w)
				}
			}
			ids := map[string]bool{}
			for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity))) {
				ids[ev.ID] = true
			}
			if tc.resumed && len(ids) != 40 {
				t.Errorf("%d distinct events on the topic, want the first sheet's 40 lines", len(ids))
			}
		})
	}
}
