package importer

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/pophub/pophub/schemas"
)

// TestDate1904Serials: a workbook's plain number in a date or time
// column is an Excel serial day number counted from the workbook's epoch:
// 1899-12-30, or 1904-01-01 in a workbook of the 1904 date system (old
// Mac Excel's, kept by a workbook saved from it), where the same day is
// 1462 days fewer. Read from the wrong epoch a date would be 4 years and
// a day early.
func TestDate1904Serials(t *testing.T) {
	m, tab, _ := housingRows(t, 100)
	typeCol, timeCol, startCol, endCol := colIndex(t, tab, "业务类型"), colIndex(t, tab, "登记时间"), colIndex(t, tab, "租期起"), colIndex(t, tab, "租期止")
	rental := -1
	for i, r := range tab.rows {
		if r[typeCol] == "租赁登记备案" {
			rental = i
			break
		}
	}
	if rental < 0 {
		t.Fatal("no rental registration in the population")
	}
	for _, tc := range []struct {
		name     string
		date1904 bool
		serial   float64 // 2026-01-05 in the workbook's date system
	}{
		{"1900 date system", false, 46027},
		{"1904 date system", true, 44565},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := excelize.NewFile()
			defer f.Close()
			if tc.date1904 {
				if err := f.SetWorkbookProps(&excelize.WorkbookPropsOptions{Date1904: &tc.date1904}); err != nil {
					t.Fatal(err)
				}
			}
			sheet := f.GetSheetName(0)
			rows := [][]string{tab.header, tab.rows[rental]}
			for r, row := range rows {
				for i, v := range row {
					c, err := excelize.CoordinatesToCellName(i+1, r+1)
					if err != nil {
						t.Fatal(err)
					}
					var val any = v
					switch {
					case r == 0:
					case i == startCol:
						val = tc.serial // unformatted: a plain number
					case i == timeCol:
						val = tc.serial + 10.0/24 // 10:00
					case i == endCol:
						val = "" // open-ended
					}
					if err := f.SetCellValue(sheet, c, val); err != nil {
						t.Fatal(err)
					}
				}
			}
			file := tempFile(t, "housing.xlsx")
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			cfg := Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true}
			cfg.setDefaults()
			var events []schemas.Event
			rep := &Report{}
			if err := validateFile(&cfg, rep, func(mp *mapped) error {
				ev, err := schemas.Decode(schemas.Input{Topic: schemas.Topic(schemas.Housing), Value: mp.value})
				events = append(events, ev)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if len(rep.Rejects) > 0 || len(events) != 1 {
				t.Fatalf("%d events, rejects %v; want one event", len(events), rep.Rejects)
			}
			var data struct {
				Start string `json:"start"`
			}
			if err := json.Unmarshal(events[0].Data, &data); err != nil {
				t.Fatal(err)
			}
			if data.Start != "2026-01-05" {
				t.Errorf("start %s, want 2026-01-05", data.Start)
			}
			shanghai, _ := location("")
			if want := time.Date(2026, 1, 5, 10, 0, 0, 0, shanghai); !events[0].Time.Equal(want) {
				t.Errorf("time %s, want %s", events[0].Time, want)
			}
		})
	}
}

// TestExcelSerialDays: Excel's 1900 date system counts a 29 February 1900
// that never was (serial 60, kept from Lotus 1-2-3), so serial 1 is
// 1900-01-01 and 61 is 1900-03-01; the fictitious day is no date. In the
// 1904 system serial 0 is 1904-01-01. Both a plain serial in a date
// column (excelDate) and a cell formatted as a date (excelTime) read so.
func TestExcelSerialDays(t *testing.T) {
	tests := []struct {
		serial   float64
		date1904 bool
		want     string // "" for no date
	}{
		{0, false, ""},
		{1, false, "1900-01-01"},
		{31, false, "1900-01-31"},
		{59, false, "1900-02-28"},
		{59.5, false, "1900-02-28"},
		{60, false, ""},
		{60.25, false, ""},
		{61, false, "1900-03-01"},
		{25569, false, "1970-01-01"},
		{46027, false, "2026-01-05"},
		{2958465, false, "9999-12-31"},
		{2958466, false, ""},
		{-1, true, ""},
		{0, true, "1904-01-01"},
		{1, true, "1904-01-02"},
		{60, true, "1904-03-01"},
		{44565, true, "2026-01-05"},
		{2957003, true, "9999-12-31"},
		{2957004, true, ""},
	}
	for _, tc := range tests {
		v := strconv.FormatFloat(tc.serial, 'f', -1, 64)
		got, ok := excelDate(v, tc.date1904, time.UTC)
		g := ""
		if ok {
			g = got.Format(time.DateOnly)
		}
		if g != tc.want {
			t.Errorf("excelDate(%s, 1904 %v) = %q, want %q", v, tc.date1904, g, tc.want)
		}
		if tc.want != "" {
			if got := excelTime(tc.serial, tc.date1904, time.UTC).Format(time.DateOnly); got != tc.want {
				t.Errorf("excelTime(%s, 1904 %v) = %s, want %s", v, tc.date1904, got, tc.want)
			}
		}
		if fictitiousDay(tc.serial, tc.date1904) != (tc.serial >= 60 && tc.serial < 61 && !tc.date1904) {
			t.Errorf("fictitiousDay(%s, 1904 %v) = %v", v, tc.date1904, !(tc.serial >= 60 && tc.serial < 61))
		}
	}
}
