package importer

import (
	"archive/zip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"
)

// cellKind is what a cell holds: text, or, in a workbook, a number. Office
// software stores a date as a number (an Excel serial day number) and
// shows it in the cell's number format, which may be anything from
// "6/4/06 10:29" to "12-01-25", so a date cell is read from its number,
// not from how it looks.
type cellKind uint8

const (
	textCell   cellKind = iota
	numberCell          // a workbook's number, as displayed
	dateCell            // a workbook's number formatted as a date or time, in dateCellLayout
)

// dateCellLayout is how a workbook's date cells are handed to the plan:
// the wall time the serial number stands for, with no zone (the mapping's
// applies).
const dateCellLayout = "2006-01-02 15:04:05.999"

// kindAt is the kind of cell i; text when kinds is nil (CSV) or short.
func kindAt(kinds []cellKind, i int) cellKind {
	if i < 0 || i >= len(kinds) {
		return textCell
	}
	return kinds[i]
}

// excelTime is the wall time of an Excel serial day number in loc, to the
// millisecond (a serial is a float64: more digits are noise).
func excelTime(serial float64, date1904 bool, loc *time.Location) time.Time {
	y, m, d := 1899, time.December, 30
	if date1904 {
		y, m, d = 1904, time.January, 1
	}
	days := math.Floor(serial)
	ms := math.Round((serial - days) * 24 * 60 * 60 * 1000)
	return time.Date(y, m, d+int(days), 0, 0, 0, int(ms)*int(time.Millisecond), loc)
}

// sheetCells reads, beside excelize's Rows (which give the cells as
// displayed and say nothing of their types), the type and number format
// of every cell of a sheet, straight from the sheet's XML: which cells are
// numbers, and the serial value of those formatted as dates. It streams
// the sheet as Rows does, so that a large sheet is never held in memory.
type sheetCells struct {
	zr        *zip.ReadCloser
	rc        io.ReadCloser
	dec       *xml.Decoder
	dateStyle []bool // by cell style (xf) index
	date1904  bool
	next      int            // the number of the row scanned last
	kinds     []cellKind     // its cells' kinds, by column (reused)
	dates     map[int]string // its date cells in dateCellLayout, by column
}

// openSheetCells opens the scan of the named sheet of the workbook at
// file.
func openSheetCells(file, sheet string) (*sheetCells, error) {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return nil, fmt.Errorf("opening workbook: %w", err)
	}
	s := &sheetCells{zr: zr}
	sheetPath, err := s.readWorkbook(sheet)
	if err == nil {
		err = s.readStyles()
	}
	if err == nil {
		s.rc, err = zr.Open(sheetPath)
	}
	if err != nil {
		zr.Close()
		return nil, fmt.Errorf("reading the cell types of sheet %q: %w", sheet, err)
	}
	s.dec = xml.NewDecoder(s.rc)
	return s, nil
}

// readWorkbook finds the sheet's part and whether dates count from 1904.
func (s *sheetCells) readWorkbook(sheet string) (string, error) {
	var wb struct {
		Pr struct {
			Date1904 string `xml:"date1904,attr"`
		} `xml:"workbookPr"`
		Sheets []struct {
			Name  string     `xml:"name,attr"`
			Attrs []xml.Attr `xml:",any,attr"` // r:id, in whichever namespace
		} `xml:"sheets>sheet"`
	}
	if err := s.decodePart("xl/workbook.xml", &wb); err != nil {
		return "", err
	}
	s.date1904 = wb.Pr.Date1904 == "1" || wb.Pr.Date1904 == "true"
	var rels struct {
		Rels []struct {
			ID     string `xml:"Id,attr"`
			Target string `xml:"Target,attr"`
		} `xml:"Relationship"`
	}
	if err := s.decodePart("xl/_rels/workbook.xml.rels", &rels); err != nil {
		return "", err
	}
	for _, sh := range wb.Sheets {
		if sh.Name != sheet {
			continue
		}
		var rid string
		for _, a := range sh.Attrs {
			if a.Name.Local == "id" {
				rid = a.Value
			}
		}
		for _, r := range rels.Rels {
			if r.ID == rid {
				if t, ok := strings.CutPrefix(r.Target, "/"); ok {
					return t, nil
				}
				return path.Join("xl", r.Target), nil
			}
		}
	}
	return "", fmt.Errorf("the workbook lists no part for sheet %q", sheet)
}

// readStyles learns which cell styles format numbers as dates or times.
func (s *sheetCells) readStyles() error {
	var st struct {
		NumFmts []struct {
			ID   int    `xml:"numFmtId,attr"`
			Code string `xml:"formatCode,attr"`
		} `xml:"numFmts>numFmt"`
		Xfs []struct {
			NumFmtID int `xml:"numFmtId,attr"`
		} `xml:"cellXfs>xf"`
	}
	err := s.decodePart("xl/styles.xml", &st)
	if errors.Is(err, zipNotFound) {
		return nil // no styles: every number is General
	}
	if err != nil {
		return err
	}
	custom := map[int]string{}
	for _, f := range st.NumFmts {
		custom[f.ID] = f.Code
	}
	s.dateStyle = make([]bool, len(st.Xfs))
	for i, xf := range st.Xfs {
		code, ok := custom[xf.NumFmtID]
		s.dateStyle[i] = ok && isDateFormat(code) || !ok && isDateNumFmt(xf.NumFmtID)
	}
	return nil
}

var zipNotFound = errors.New("no such part")

// decodePart decodes a part read whole, which may be no larger than
// maxInMemoryBytes (see checkWorkbook).
func (s *sheetCells) decodePart(name string, v any) error {
	for _, f := range s.zr.File {
		if f.Name != name {
			continue
		}
		if f.UncompressedSize64 > maxInMemoryBytes {
			return overLimit("workbook part %s expands to %d bytes, over the limit of %d", name, f.UncompressedSize64, maxInMemoryBytes)
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("opening %s: %w", name, err)
		}
		defer rc.Close()
		if err := xml.NewDecoder(io.LimitReader(rc, maxInMemoryBytes)).Decode(v); err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("%s: %w", name, zipNotFound)
}

// isDateNumFmt reports whether a built-in number format is a date or time:
// 14–22 and 45–47 everywhere, 27–36 and 50–58 in the East Asian locales
// (年月日 formats).
func isDateNumFmt(id int) bool {
	return 14 <= id && id <= 22 || 27 <= id && id <= 36 || 45 <= id && id <= 47 || 50 <= id && id <= 58
}

// isDateFormat reports whether a custom number format code shows a date
// or time: it has a y, m, d, h or s outside quoted text, escapes and
// brackets ([h] elapsed hours aside, which are time too).
func isDateFormat(code string) bool {
	code = strings.ReplaceAll(strings.ToLower(code), "general", "")
	for i := 0; i < len(code); i++ {
		switch c := code[i]; c {
		case '"':
			if j := strings.IndexByte(code[i+1:], '"'); j >= 0 {
				i += j + 1
			}
		case '\\', '_', '*':
			i++ // the next character is literal, or padding
		case '[':
			j := strings.IndexByte(code[i:], ']')
			if j < 0 {
				return false
			}
			if b := code[i+1 : i+j]; b != "" && strings.Trim(b, "hms") == "" {
				return true
			}
			i += j
		case 'y', 'm', 'd', 'h', 's':
			return true
		}
	}
	return false
}

// row scans to row number n and returns its cells' kinds and date values
// (nil for a row the sheet leaves out). Rows are asked for in order.
func (s *sheetCells) row(n int) ([]cellKind, map[int]string, error) {
	for s.next < n {
		if err := s.scanRow(); err != nil {
			return nil, nil, err
		}
	}
	if s.next != n {
		return nil, nil, nil
	}
	return s.kinds, s.dates, nil
}

// scanRow reads the next row element; at the end of the sheet it sets
// next past every row.
func (s *sheetCells) scanRow() error {
	s.kinds, s.dates = s.kinds[:0], nil
	for {
		tok, err := s.dec.Token()
		if err == io.EOF {
			s.next = math.MaxInt
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading cell types: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != "row" {
			continue
		}
		s.next++
		if r := attr(start, "r"); r != "" {
			if s.next, err = strconv.Atoi(r); err != nil {
				return fmt.Errorf("reading cell types: row number %q: %w", r, err)
			}
		}
		return s.scanCells()
	}
}

// scanCells reads the cells of the row element just started.
func (s *sheetCells) scanCells() error {
	col := 0
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return fmt.Errorf("reading cell types: %w", err)
		}
		switch el := tok.(type) {
		case xml.EndElement:
			if el.Name.Local == "row" {
				return nil
			}
		case xml.StartElement:
			if el.Name.Local != "c" {
				continue
			}
			col++
			if ref := attr(el, "r"); ref != "" {
				if col, _, err = excelize.CellNameToCoordinates(ref); err != nil {
					return fmt.Errorf("reading cell types: %w", err)
				}
			}
			var c struct {
				V string `xml:"v"`
			}
			if err := s.dec.DecodeElement(&c, &el); err != nil {
				return fmt.Errorf("reading cell types: %w", err)
			}
			s.add(col-1, attr(el, "t"), attr(el, "s"), strings.TrimSpace(c.V))
		}
	}
}

// add records the kind of the cell at index i from its type, style and
// value.
func (s *sheetCells) add(i int, typ, style, v string) {
	kind := textCell
	var date string
	switch typ {
	case "", "n":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			break
		}
		kind = numberCell
		if st, err := strconv.Atoi(style); err == nil && st >= 0 && st < len(s.dateStyle) && s.dateStyle[st] {
			kind, date = dateCell, excelTime(f, s.date1904, time.UTC).Format(dateCellLayout)
		}
	case "d": // an ISO 8601 date cell
		for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05Z07:00", time.DateOnly} {
			if t, err := time.Parse(l, v); err == nil {
				kind, date = dateCell, t.Format(dateCellLayout)
				break
			}
		}
	}
	if kind == textCell {
		return
	}
	for len(s.kinds) <= i {
		s.kinds = append(s.kinds, textCell)
	}
	s.kinds[i] = kind
	if kind == dateCell {
		if s.dates == nil {
			s.dates = map[int]string{}
		}
		s.dates[i] = date
	}
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (s *sheetCells) Close() error {
	return errors.Join(s.rc.Close(), s.zr.Close())
}
