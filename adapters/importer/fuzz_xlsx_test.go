package importer

import (
	"bytes"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
)

// FuzzXLSXvsCSV: a table of text cells saved as a workbook and as CSV
// reads as the same rows, on the same lines.
func FuzzXLSXvsCSV(f *testing.F) {
	f.Add("张三\x1f110101199003074514\x1e李四\x1f \x1e\x1f\x1ex\x1fy")
	f.Add("a b\x1f 1\x1e\x1e\x1e\x1fq")
	f.Add("line\nbreak\x1fz")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || len(s) > 2000 {
			return
		}
		for _, r := range s {
			if r != '\n' && r != '\x1f' && r != '\x1e' && !unicode.IsPrint(r) && r != ' ' {
				return
			}
		}
		var rows [][]string
		for _, line := range strings.Split(s, "\x1e") {
			cells := strings.Split(line, "\x1f")
			if len(cells) > 3 {
				return
			}
			for len(cells) < 3 {
				cells = append(cells, "")
			}
			rows = append(rows, cells)
		}
		header := []string{"a", "b", "c"}
		dir := t.TempDir()
		x := excelize.NewFile()
		x.SetSheetRow("Sheet1", "A1", &header)
		for i, r := range rows {
			cell, _ := excelize.CoordinatesToCellName(1, i+2)
			vals := make([]any, len(r))
			for j, c := range r {
				vals[j] = c
			}
			if err := x.SetSheetRow("Sheet1", cell, &vals); err != nil {
				return
			}
		}
		xf := filepath.Join(dir, "t.xlsx")
		if err := x.SaveAs(xf); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Write(header)
		w.WriteAll(rows)
		_, crows, err := readAllCSV(t, b.Bytes(), "utf-8", ',')
		if err != nil {
			t.Fatal(err)
		}
		xs, err := openXLSX(xf, sheetChoice{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer xs.Close()
		var xrows []row
		for {
			r, err := xs.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			xrows = append(xrows, r)
		}
		// CSV numbers records by their first line; a workbook by row.
		// Compare cells only, then the line numbers of workbook rows.
		if len(crows) != len(xrows) {
			t.Fatalf("CSV %d rows, workbook %d:\n%q\n%+v\n%+v", len(crows), len(xrows), rows, crows, xrows)
		}
		for i := range crows {
			if !slices.Equal(crows[i].cells, xrows[i].cells) || (crows[i].malformed != "") != (xrows[i].malformed != "") {
				t.Fatalf("row %d: CSV %+v, workbook %+v", i, crows[i], xrows[i])
			}
		}
	})
}

// FuzzOpenXLSX: any bytes saved as a workbook are read, or refused,
// without a panic, and its rows are numbered in order.
func FuzzOpenXLSX(f *testing.F) {
	x := excelize.NewFile()
	x.SetSheetRow("Sheet1", "A1", &[]any{"姓名", "号码", "日期"})
	x.SetSheetRow("Sheet1", "A2", &[]any{"张三", 110101800101451, 45352.5})
	x.MergeCell("Sheet1", "A2", "A3")
	st, _ := x.NewStyle(&excelize.Style{NumFmt: 14})
	x.SetCellStyle("Sheet1", "C2", "C2", st)
	var b bytes.Buffer
	if err := x.Write(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "f.xlsx")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openXLSX(file, sheetChoice{}, 1)
		if err != nil {
			return
		}
		defer s.Close()
		last := 1
		for n := 0; n < 1000; n++ {
			r, err := s.next()
			if err != nil {
				return
			}
			if r.line <= last {
				t.Fatalf("row %d after %d", r.line, last)
			}
			last = r.line
		}
	})
}
