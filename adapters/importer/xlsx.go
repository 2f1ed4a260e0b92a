package importer

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
)

// cellKind is what a cell holds: text, or, in a workbook, a number. A
// workbook's number is read from the value the cell holds, not from how
// its number format shows it: a format may round (89.56 shown as 90), add
// separators, decimals, a sign or a currency (1,234.50; a version 1 shown
// as 1.00; ¥-12), or show a date — office software stores a date as a
// number (an Excel serial day number) and shows it in a format that may
// be anything from "6/4/06 10:29" to "12-01-25". A format that adds text
// or digits of its own is the exception (see numberRead).
type cellKind uint8

const (
	textCell   cellKind = iota
	numberCell          // a workbook's number, as numberText writes it, or as shown (numberRead)
	dateCell            // a workbook's number formatted as a date or time, in dateCellLayout
	errorCell           // a workbook's formula error (#N/A, #REF!): no value at all (see formulaError)
)

// numberRead is how the number cells of a cell style are read.
type numberRead uint8

const (
	// byValue: from the value, as numberCellText writes it.
	byValue numberRead = iota
	// asDate: as the date or time the value stands for.
	asDate
	// asShown: as the format shows the value, because the format adds
	// text or digits that are part of what the cell says: a district's
	// prefix typed once in the format ("230102"000000 shows 1001 as
	// 230102001001), a household number "H"000 (H007). The value alone
	// would be another code.
	asShown
)

// numberFormatRead is how a number in a custom format code is read.
func numberFormatRead(code string) numberRead {
	switch {
	case isDateFormat(code):
		return asDate
	case addsText(code):
		return asShown
	}
	return byValue
}

// addsText reports whether a custom number format code shows text or
// digits besides the number: quoted text, an escaped character (\A) or a
// literal character that is no format code. Signs, parentheses, spaces
// and currency symbols ("¥"#,##0.00, [$€-407], 0;\-0, accounting's "-"
// for zero) only dress the number and do not count, nor do colours and
// conditions in brackets, padding (_x) and fill (*x) of those.
func addsText(code string) bool {
	for i := 0; i < len(code); {
		c := code[i]
		switch {
		case len(code)-i >= len("general") && strings.EqualFold(code[i:i+len("general")], "general"):
			i += len("general")
		case c == '"':
			j := strings.IndexByte(code[i+1:], '"')
			if j < 0 {
				j = len(code) - i - 1
			}
			if !dressing(code[i+1 : i+1+j]) {
				return true
			}
			i += j + 2
		case c == '\\' || c == '*':
			_, n := utf8.DecodeRuneInString(code[i+1:])
			if !dressing(code[i+1 : i+1+n]) {
				return true
			}
			i += 1 + n
		case c == '_':
			_, n := utf8.DecodeRuneInString(code[i+1:])
			i += 1 + n // a space as wide as the character
		case c == '[':
			j := strings.IndexByte(code[i:], ']')
			if j < 0 {
				return true
			}
			// A colour, a condition, or a locale with its currency
			// symbol ([$¥-804]).
			i += j + 1
		case (c == 'e' || c == 'E') && i+1 < len(code) && (code[i+1] == '+' || code[i+1] == '-'):
			i += 2 // scientific notation
		case c == '/':
			// A fraction: its denominator may be written out (# ?/16).
			for i++; i < len(code) && '0' <= code[i] && code[i] <= '9'; i++ {
			}
		case strings.IndexByte("0#?.,%@;", c) >= 0:
			i++
		default:
			_, n := utf8.DecodeRuneInString(code[i:])
			if !dressing(code[i : i+n]) {
				return true
			}
			i += n
		}
	}
	return false
}

// dressing reports whether literal text of a number format only dresses
// the number: signs, parentheses, spaces and currency symbols.
func dressing(text string) bool {
	return strings.Trim(text, " \u00a0+-()$¥￥€£") == ""
}

// numberText writes a workbook's number as the plain decimal it stands
// for (no exponent below 1e21), to the 15 significant digits Excel keeps:
// a sheet stores 89.56 as 89.560000000000002, and a clerk typed 89.56.
func numberText(f float64) string {
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 15, 64), 64)
	if err != nil {
		r = f
	}
	if math.Abs(r) >= 1e21 {
		return strconv.FormatFloat(r, 'g', -1, 64)
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// numberCellText is how the import reads a number cell shown as shown:
// the number, as numberText writes it, unless shown is that number with
// zeros before it. A format such as 00 or 000000 is how a code kept as a
// number keeps its leading zeros (民族 01, a postal code 010010), and
// those are part of the code.
func numberCellText(value, shown string) string {
	if len(shown) > len(value) && strings.TrimLeft(shown, "0") == strings.TrimLeft(value, "0") && allDigits(shown) {
		return shown
	}
	return value
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

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
// millisecond (a serial is a float64: more digits are noise). The 1900
// date system counts a 29 February 1900 that never was (serial 60, kept
// from Lotus 1-2-3): serials before it count from 1899-12-31, later ones
// from 1899-12-30. See fictitiousDay.
func excelTime(serial float64, date1904 bool, loc *time.Location) time.Time {
	y, m, d := 1899, time.December, 30
	switch {
	case date1904:
		y, m, d = 1904, time.January, 1
	case serial < 60:
		d = 31
	}
	days := math.Floor(serial)
	ms := math.Round((serial - days) * 24 * 60 * 60 * 1000)
	return time.Date(y, m, d+int(days), 0, 0, 0, int(ms)*int(time.Millisecond), loc)
}

// fictitiousDay reports whether serial is Excel's 29 February 1900 of the
// 1900 date system, a day that never was: read as a date it is refused.
func fictitiousDay(serial float64, date1904 bool) bool {
	return !date1904 && serial >= 60 && serial < 61
}

// sheetCells reads, beside excelize's Rows (which give the cells as
// displayed and say nothing of their types), the type, number format and
// value of every cell of a sheet, straight from the sheet's XML: which
// cells are numbers, their values, and the dates of those formatted as
// dates. It streams
// the sheet as Rows does, so that a large sheet is never held in memory.
type sheetCells struct {
	zr       *zip.ReadCloser
	rc       io.ReadCloser
	dec      *xml.Decoder
	styles   []numberRead // by cell style (xf) index
	date1904 bool
	next     int            // the number of the row scanned last
	kinds    []cellKind     // its cells' kinds, by column (reused)
	values   map[int]string // its number cells read by value (numberText) and date cells (dateCellLayout), by column
	merges   *merges        // the sheet's merged ranges
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
		s.merges, err = readMerges(zr, sheetPath)
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

// readStyles learns how the number cells of each cell style are read:
// built-in formats by value, as dates for those of dates and times;
// custom ones by numberFormatRead.
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
	s.styles = make([]numberRead, len(st.Xfs))
	for i, xf := range st.Xfs {
		if code, ok := custom[xf.NumFmtID]; ok {
			s.styles[i] = numberFormatRead(code)
		} else if isDateNumFmt(xf.NumFmtID) {
			s.styles[i] = asDate
		}
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

// row scans to row number n and returns its cells' kinds and the values
// of its date and error cells and of the number cells read by value (nil for a row
// the sheet leaves out); a number cell read as shown has its kind and no
// value. Rows are asked for in order.
func (s *sheetCells) row(n int) ([]cellKind, map[int]string, error) {
	for s.next < n {
		if err := s.scanRow(); err != nil {
			return nil, nil, err
		}
	}
	if s.next != n {
		return nil, nil, nil
	}
	return s.kinds, s.values, nil
}

// scanRow reads the next row element; at the end of the sheet it sets
// next past every row.
func (s *sheetCells) scanRow() error {
	s.kinds, s.values = s.kinds[:0], nil
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
	var value string
	shown := false
	switch typ {
	case "", "n":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			break
		}
		kind, value = numberCell, numberText(f)
		if st, err := strconv.Atoi(style); err == nil && st >= 0 && st < len(s.styles) {
			switch s.styles[st] {
			case asDate:
				if !fictitiousDay(f, s.date1904) { // else a number, which no date field takes
					kind, value = dateCell, excelTime(f, s.date1904, time.UTC).Format(dateCellLayout)
				}
			case asShown:
				shown = true
			}
		}
	case "e": // a formula's error, as the sheet shows it
		kind, value = errorCell, v
	case "d": // an ISO 8601 date cell
		for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05Z07:00", time.DateOnly} {
			if t, err := time.Parse(l, v); err == nil {
				kind, value = dateCell, t.Format(dateCellLayout)
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
	if shown {
		return
	}
	if s.values == nil {
		s.values = map[int]string{}
	}
	s.values[i] = value
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

// maxMergedRanges bounds the merged ranges of a sheet, which the import
// holds in memory (a few dozen bytes each): a sheet that merges a column
// down every pair of its million rows has half a million.
const maxMergedRanges = 1 << 20

// mergedRange is a range of merged cells: rows top to bottom (from 1),
// columns left to right (from 0). Office software keeps the value of the
// range in its top-left cell only, and shows it over the whole range.
type mergedRange struct {
	top, bottom, left, right int
}

// merges fills the cells of a sheet's merged ranges below their top-left
// cells, row by row in order, so that what the clerk sees over a range is
// what the import reads in each of its rows: a type or a date merged
// down over the rows it groups. Only a range's first column is filled:
// merging across columns widens a cell over columns it does not belong
// to (a name over an unused remarks column), and those columns, which a
// mapping may read as other fields, stay empty.
type merges struct {
	ranges []mergedRange // by top row
	next   int           // the first range not yet reached
	active []mergedCell  // ranges reached, with their top-left cells
}

// mergedCell is a merged range and the value of its top-left cell.
type mergedCell struct {
	mergedRange
	value string
	kind  cellKind
}

// fill sets the empty cells of row number line that merged ranges cover
// in their first column, below their top-left cells, to the values of
// those, read from earlier rows. It is called for every row, in order:
// the rows down to the header, so that a column name merged down over a
// header of two rows is read in the second, then, after endHeader, the
// data rows. It returns kinds, allocated if a number or date fills a row
// of text.
func (m *merges) fill(line int, cells []string, kinds []cellKind) []cellKind {
	m.active = slices.DeleteFunc(m.active, func(c mergedCell) bool { return c.bottom < line })
	for ; m.next < len(m.ranges) && m.ranges[m.next].top <= line; m.next++ {
		r := m.ranges[m.next]
		if r.top < line || r.top == r.bottom || r.left >= len(cells) {
			continue
		}
		if v := cells[r.left]; strings.TrimSpace(v) != "" {
			m.active = append(m.active, mergedCell{mergedRange: r, value: v, kind: kindAt(kinds, r.left)})
		}
	}
	for _, c := range m.active {
		if line == c.top || cells[c.left] != "" {
			continue
		}
		cells[c.left] = c.value
		if c.kind != textCell && kinds == nil {
			kinds = make([]cellKind, len(cells))
		}
		if kinds != nil {
			kinds[c.left] = c.kind
		}
	}
	return kinds
}

// reach is how many cells row number line needs for the ranges reached
// so far that fill it (see fill): one past the first column of the
// rightmost. Excel leaves out a row's trailing empty cells, those of
// such a range among them.
func (m *merges) reach(line int) int {
	n := 0
	for _, c := range m.active {
		if c.top < line && line <= c.bottom {
			n = max(n, c.left+1)
		}
	}
	return n
}

// endHeader forgets the ranges reached in the rows down to the header: a
// range whose top-left cell is in a title or the header fills no data
// row with its name.
func (m *merges) endHeader() {
	m.active = m.active[:0]
}

// readMerges reads the merged ranges of a sheet part. They follow the
// sheet's rows in its XML, so the part is read once more, at the speed of
// a byte search: only the mergeCell elements are parsed (markup, since
// text in XML cannot hold a '<').
func readMerges(zr *zip.ReadCloser, name string) (*merges, error) {
	rc, err := zr.Open(name)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	m := &merges{}
	for {
		if _, err := br.ReadSlice('<'); err == bufio.ErrBufferFull {
			continue
		} else if err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		head, _ := br.Peek(64)
		tag := localName(head)
		if string(tag) != "mergeCell" {
			continue
		}
		el, err := br.ReadSlice('>')
		if err != nil {
			return nil, fmt.Errorf("reading the merged cells of %s: %w", name, err)
		}
		r, ok, err := mergeRef(el)
		if err != nil {
			return nil, fmt.Errorf("reading the merged cells of %s: %w", name, err)
		}
		if !ok {
			continue
		}
		if len(m.ranges) == maxMergedRanges {
			return nil, overLimit("the sheet has more than %d merged ranges, the limit", maxMergedRanges)
		}
		m.ranges = append(m.ranges, r)
	}
	slices.SortStableFunc(m.ranges, func(a, b mergedRange) int { return a.top - b.top })
	return m, nil
}

// mergeRef reads the range of a mergeCell element, el being its text
// after '<'; ok is false for a range of one cell.
func mergeRef(el []byte) (r mergedRange, ok bool, err error) {
	var ref string
	for i := bytes.Index(el, []byte("ref=")); i >= 0; {
		rest := el[i+len("ref="):]
		if i > 0 && (el[i-1] == ' ' || el[i-1] == '\t' || el[i-1] == '\r' || el[i-1] == '\n') && len(rest) > 0 && (rest[0] == '"' || rest[0] == '\'') {
			if j := bytes.IndexByte(rest[1:], rest[0]); j >= 0 {
				ref = string(rest[1 : 1+j])
				break
			}
		}
		j := bytes.Index(rest, []byte("ref="))
		if j < 0 {
			break
		}
		i += len("ref=") + j
	}
	from, to, found := strings.Cut(ref, ":")
	if !found {
		return r, false, nil
	}
	c1, r1, err := excelize.CellNameToCoordinates(from)
	if err != nil {
		return r, false, fmt.Errorf("merged range %q: %w", ref, err)
	}
	c2, r2, err := excelize.CellNameToCoordinates(to)
	if err != nil {
		return r, false, fmt.Errorf("merged range %q: %w", ref, err)
	}
	r = mergedRange{top: min(r1, r2), bottom: max(r1, r2), left: min(c1, c2) - 1, right: max(c1, c2) - 1}
	return r, r.top != r.bottom || r.left != r.right, nil
}
