package importer

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/xuri/excelize/v2"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestSheetWithoutName: with no sheet in the mapping, a workbook of
// several sheets is read from its first visible sheet holding the
// mapping's columns, as pophub read the first sheet before, whichever
// sheet was open when it was saved; never from a hidden one (last
// month's, hidden away). The report names the sheet read.
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
		{name: "both visible, active second", active: 1, read: 3, sheet: "2月"},
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
// 2007–2010 and WPS add to a new workbook, a chart sheet, instructions, a
// summary holding one of the mapping's columns) imports its data sheet,
// as it did when the first sheet was read, and the report names it; so
// does one whose first sheet is such a summary.
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
		{name: "summary open", build: func(f *excelize.File) {
			f.NewSheet("汇总")
			setSheetRow(t, f, "汇总", 1, []string{"业务类型", "人数"})
			setSheetRow(t, f, "汇总", 2, []string{"户口登记", "3"})
			f.SetActiveSheet(1)
		}},
		{name: "summary first, not open", build: func(f *excelize.File) {
			f.NewSheet("汇总")
			setSheetRow(t, f, "汇总", 1, []string{"业务类型", "人数"})
			if err := f.MoveSheet("汇总", "Sheet1"); err != nil {
				t.Fatal(err)
			}
			f.SetActiveSheet(1)
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

// TestSheetNoneHoldsColumns: a workbook none of whose visible sheets
// holds every column of the mapping is refused naming the sheets looked
// at, the one holding most and the columns it lacks, and how to name the
// sheet to read; a sheet the mapping names that the workbook lacks is
// refused listing the workbook's sheets.
func TestSheetNoneHoldsColumns(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 2)
	f := excelize.NewFile()
	f.SetSheetName("Sheet1", "汇总")
	f.NewSheet("户籍数据")
	setSheetRow(t, f, "汇总", 1, []string{"业务类型", "人数"})
	name := colIndex(t, tab, "姓名")
	setSheetRow(t, f, "户籍数据", 1, slices.Delete(slices.Clone(tab.header), name, name+1))
	for i, r := range rows {
		setSheetRow(t, f, "户籍数据", i+2, slices.Delete(slices.Clone(r), name, name+1))
	}
	file := tempFile(t, "hukou.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	named := *m
	named.Sheet = "3月"
	for _, tc := range []struct {
		name    string
		mapping *Mapping
		want    []string
	}{
		{name: "no sheet named", mapping: m, want: []string{`visible sheets "汇总", "户籍数据"`, `sheet "户籍数据" holds most`, `column "姓名" is not in the header`, "sheet: NAME", "header_row: N"}},
		{name: "a sheet it lacks named", mapping: &named, want: []string{`no sheet "3月"`, `"汇总", "户籍数据"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: tc.mapping, DryRun: true})
			if err == nil {
				t.Fatal("imported")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q; want it to say %q", err, w)
				}
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
	if err == nil || !strings.Contains(err.Error(), `"Sheet1", "Sheet2"`) || !strings.Contains(err.Error(), "sheet: NAME") {
		t.Errorf("error %v; want the sheets looked at named, and how to name one", err)
	}
}

// TestSheetResumeCheckpoint: an import of a workbook of two sheets of the
// same columns, saved while the second was open, was stopped midway by a
// pophub that read the first sheet and wrote checkpoints naming no sheet.
// Resumed after the upgrade, and stopped again any number of times, it
// goes on with the first sheet, even when that sheet is hidden: the user
// relies on every line of it being sent once, none skipped as already
// sent, and nothing of the other sheet sent in their place.
func TestSheetResumeCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream bool
		hidden bool // the first sheet is hidden
		stops  int  // the runs of this pophub stopped before the last
	}{
		{name: "resumed at once"},
		{name: "resumed at once, streamed", stream: true},
		{name: "stopped again", stops: 1},
		{name: "stopped twice again, streamed", stream: true, stops: 2},
		{name: "first sheet hidden, stopped again", hidden: true, stops: 1},
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
			if tc.hidden {
				if err := f.SetSheetVisible("3月", false); err != nil {
					t.Fatal(err)
				}
			}
			file := tempFile(t, "hukou.xlsx")
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			cfg := Config{Source: schemas.PublicSecurity, File: file, Mapping: m, Brokers: []string{addr}, BatchSize: 5, ChunkSize: 10,
				CheckpointInterval: time.Nanosecond, Stream: tc.stream}
			cfg.setDefaults()
			saveSheetlessCheckpoint(t, &cfg)
			crash := errors.New("crash")
			for i := range tc.stops {
				// Stopped after its second chunk, the first checkpointed.
				stop, chunks := cfg, 0
				stop.hookOK = func(int) error {
					if chunks++; chunks < 2 {
						return nil
					}
					return crash
				}
				if _, err := Run(context.Background(), stop); !errors.Is(err, crash) {
					t.Fatalf("run %d: %v", i+1, err)
				}
			}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sheet != "3月" || !rep.Resumed || rep.AlreadySent+rep.Sent != 40 {
				t.Errorf("last run: %s; resumed %v, set aside %q; want sheet 3月 resumed, its 40 lines sent", rep.Summary(), rep.Resumed, rep.SetAside)
			}
			ids := map[string]int{}
			for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity))) {
				ids[ev.ID]++
			}
			for id, n := range ids {
				if n > 1 {
					t.Errorf("event %s sent %d times", id, n)
				}
			}
			if len(ids) != 40 {
				t.Errorf("%d distinct events on the topic, want the first sheet's 40 lines", len(ids))
			}
		})
	}
}

// saveSheetlessCheckpoint saves the checkpoint that a pophub writing no
// sheet in it saved at the start of an import of cfg.File to an empty
// topic.
func saveSheetlessCheckpoint(t *testing.T, cfg *Config) {
	t.Helper()
	st, err := os.Stat(cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := fileDigest(cfg.File)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := cfg.checkpointOf(st.Size(), sum)
	if err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	if ck.Cluster, ck.Offsets, err = topicState(context.Background(), client, schemas.Topic(cfg.Source)); err != nil {
		t.Fatal(err)
	}
	if err := ck.save(cfg.CheckpointFile); err != nil {
		t.Fatal(err)
	}
}

// TestWorkbookCheckpointFoundByJSONL: a JSONL import, which has no
// mapping, that finds a workbook's checkpoint at its checkpoint path (the
// same path imported before as a workbook, with --format) sets it aside
// and imports the file afresh.
func TestWorkbookCheckpointFoundByJSONL(t *testing.T) {
	file := tempFile(t, "data.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(marriageLines(t, 5), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ck := `{"version":2,"file":"data.jsonl","size":1,"sha256":"x","source":"marriage","format":"xlsx","lines_acknowledged":3}`
	if err := os.WriteFile(file+".pophub-import.json", []byte(ck), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, partitions)
	rep, err := Run(context.Background(), Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}})
	if err != nil || rep.Resumed || rep.SetAside == "" || rep.Sent != 5 {
		t.Errorf("%v: %s (set aside %q); want the checkpoint set aside, the 5 lines sent", err, rep.Summary(), rep.SetAside)
	}
}
