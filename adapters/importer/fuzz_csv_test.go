package importer

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// readAllCSV reads every row of data as openCSV does.
func readAllCSV(t *testing.T, data []byte, enc string, comma rune) (*csvSource, []row, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "f.csv")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openCSV(file, enc, comma, 1)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	var rows []row
	for {
		r, err := s.next()
		if err == io.EOF {
			return s, rows, nil
		}
		if err != nil {
			return s, rows, err
		}
		rows = append(rows, r)
		if len(rows) > 10000 {
			t.Fatal("too many rows")
		}
	}
}

var csvSeeds = []string{
	"姓名,身份证号\n张三,110101199003074514\n",
	"a,b\n1,2\n\n3,4\r\n",
	"a,b\n\"x\ny\",2\n3,4\n",
	"a,b\n\"x\"y,2\n3,4\n",
	"a;b\n1;2\n",
	"a\tb\n1\t2\n",
	"a,b\n ,\n,,,\n1,2",
	"\xef\xbb\xbfa,b\n1,2\n",
	"a,b\n\"unterminated\n1,2\n",
}

// FuzzCSVUTF8: a UTF-8 file is read as encoding/csv reads it, blank
// records left out, each row numbered by the line its first field is on.
func FuzzCSVUTF8(f *testing.F) {
	for _, s := range csvSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) || bytes.HasPrefix(data, []byte(bom)) || len(data) > 1<<16 {
			return
		}
		s, rows, err := readAllCSV(t, data, "", ',')
		if err != nil {
			return
		}
		if s.encoding != encodingUTF8 {
			t.Fatalf("valid UTF-8 detected as %s", s.encoding)
		}
		// the reference
		cr := csv.NewReader(bytes.NewReader(data))
		cr.FieldsPerRecord = -1
		header, err := cr.Read()
		if err != nil {
			t.Fatalf("header: openCSV read one, encoding/csv: %v", err)
		}
		var want []row
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				want = append(want, row{line: pe.StartLine, malformed: "x"})
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if blank(rec) {
				continue
			}
			line, _ := cr.FieldPos(0)
			w := row{line: line, cells: rec}
			if len(rec) != len(header) {
				w.malformed = "columns"
			}
			want = append(want, w)
		}
		if len(rows) != len(want) {
			t.Fatalf("%d rows, encoding/csv %d: %+v vs %+v", len(rows), len(want), rows, want)
		}
		for i := range rows {
			g, w := rows[i], want[i]
			if g.line != w.line || (g.malformed != "") != (w.malformed != "") {
				t.Fatalf("row %d: line %d malformed %q, want line %d malformed %v", i, g.line, g.malformed, w.line, w.malformed != "")
			}
			if w.malformed == "" && !slices.Equal(g.cells, w.cells) {
				t.Fatalf("row %d: %q, want %q", i, g.cells, w.cells)
			}
		}
	})
}

// FuzzCSVGBK: a UTF-8 table saved as GBK reads as the same rows.
func FuzzCSVGBK(f *testing.F) {
	for _, s := range csvSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) || bytes.HasPrefix(data, []byte(bom)) || len(data) > 1<<16 {
			return
		}
		gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes(data)
		if err != nil {
			return // not all of it in GBK
		}
		_, rows, err := readAllCSV(t, data, "utf-8", ',')
		if err != nil {
			return
		}
		_, grows, gerr := readAllCSV(t, gbk, "gbk", ',')
		if gerr != nil {
			if bytes.Equal(gbk, data) {
				t.Fatalf("ASCII file: %v", gerr)
			}
			return // e.g. refused as UTF-8
		}
		if len(rows) != len(grows) {
			t.Fatalf("%d rows, as GBK %d: %+v vs %+v", len(rows), len(grows), rows, grows)
		}
		for i := range rows {
			g, w := grows[i], rows[i]
			if g.line != w.line {
				t.Fatalf("row %d: GBK line %d, UTF-8 line %d", i, g.line, w.line)
			}
			if (g.malformed != "") != (w.malformed != "") {
				// a GBK line valid as UTF-8 Chinese is expected to be rejected
				if g.malformed == utf8RowDetail {
					continue
				}
				t.Fatalf("row %d (line %d): GBK malformed %q, UTF-8 malformed %q", i, g.line, g.malformed, w.malformed)
			}
			if w.malformed == "" && !slices.Equal(g.cells, w.cells) {
				t.Fatalf("row %d: GBK %q, UTF-8 %q", i, g.cells, w.cells)
			}
		}
	})
}
