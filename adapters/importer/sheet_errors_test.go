package importer

import (
	"context"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/pophub/pophub/schemas"
)

// TestSheetErrorSaysWhatToName: when no visible sheet of a workbook holds
// every column of the mapping, the clerk is told which sheet to name: a
// hidden sheet that holds them all is named, and a sheet is said to hold
// most only when it holds any.
func TestSheetErrorSaysWhatToName(t *testing.T) {
	line := []string{"参保登记", "230604198401270165", "2010-02-28 09:20:00", "养老保险、医疗保险、失业保险、工伤保险", "", "230603", "职工", "2010-02-28", "", ""}
	tests := []struct {
		name      string
		build     func(f *excelize.File)
		want      []string
		wantLacks []string
	}{
		{"the data sheet hidden, a summary visible", func(f *excelize.File) {
			f.SetSheetName("Sheet1", "明细")
			f.NewSheet("汇总")
			setSheetRow(t, f, "明细", 1, siHeader)
			setSheetRow(t, f, "明细", 2, line)
			setSheetRow(t, f, "汇总", 1, []string{"缴费月份", "人数", "金额"})
			f.SetActiveSheet(1)
			if err := f.SetSheetVisible("明细", false); err != nil {
				t.Fatal(err)
			}
		}, []string{`sheet "汇总" holds most`, `the hidden sheet "明细" does: to read it, name it in the mapping, sheet: 明细`}, nil},
		{"every sheet's header below a title", func(f *excelize.File) {
			f.SetSheetName("Sheet1", "明细")
			f.NewSheet("汇总")
			setSheetRow(t, f, "明细", 1, []string{"2026年参保明细"})
			setSheetRow(t, f, "明细", 2, siHeader)
			setSheetRow(t, f, "明细", 3, line)
			setSheetRow(t, f, "汇总", 1, []string{"2026年汇总"})
			setSheetRow(t, f, "汇总", 2, []string{"缴费月份", "人数", "金额"})
		}, []string{"header_row: N, if the header is lower"}, []string{"holds most", "hidden"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := excelize.NewFile()
			tt.build(f)
			file := tempFile(t, "si.xlsx")
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			_, err := Run(context.Background(), Config{Source: schemas.SocialInsurance, File: file, Mapping: mustMapping(t, schemas.SocialInsurance), DryRun: true})
			if err == nil {
				t.Fatal("the import was not refused")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, w := range tt.wantLacks {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q says %q", err, w)
				}
			}
		})
	}
}
