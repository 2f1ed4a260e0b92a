package importer

import (
	"context"
	"encoding/json"
	"testing"

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
	m := mustMapping(t, schemas.SocialInsurance)
	month := m.DataByType[schemas.ContributionRecorded]["month"]
	month.Layout = "" // the default month forms, 2026.3 among them
	m.DataByType[schemas.ContributionRecorded]["month"] = month
	tab, _ := render(t, m, population(t, 100, schemas.SocialInsurance))
	var row []string
	for _, r := range tab.rows {
		if r[colIndex(t, tab, "业务类型")] == "缴费记录" {
			row = append([]string(nil), r...)
			break
		}
	}
	if row == nil {
		t.Fatal("no contribution in the population")
	}
	row[colIndex(t, tab, "经办时间")] = "2026-11-15 10:00:00"
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
