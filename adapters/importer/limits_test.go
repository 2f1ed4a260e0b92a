package importer

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// allocated is how many bytes f allocates: a bound on the memory it uses.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// repeat is a part of a generated file: head, then unit n times, then
// tail. It is written a piece at a time, so that a file of gigabytes of
// it costs the test no memory.
type repeat struct {
	head, unit, tail string
	n                int
}

func (r repeat) size() int64 { return int64(len(r.head) + r.n*len(r.unit) + len(r.tail)) }

func (r repeat) writeTo(t testing.TB, w io.Writer) {
	t.Helper()
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(r.head)
	for range r.n {
		bw.WriteString(r.unit)
	}
	bw.WriteString(r.tail)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
}

// longLineBytes is the size of the over-long line the tests write: far
// past maxRowBytes, and large enough that holding it once would show.
const longLineBytes = 64 << 20

// TestLongLines: a line longer than maxRowBytes — an unquoted cell, a
// quoted cell over many lines, a JSONL line — is a malformed_row with its
// line number, read past without being held in memory: the import
// allocates far less than the line's size. The rejects file holds the
// start of it, marked as cut; the lines after it keep their line numbers,
// and the good lines are sent.
func TestLongLines(t *testing.T) {
	m, tab, events := housingRows(t, 100)
	m.Encoding = "utf-8"
	var csvHead bytes.Buffer
	w := csv.NewWriter(&csvHead)
	w.Write(tab.header)
	w.WriteAll(tab.rows[:2])
	w.Flush()
	var csvTail bytes.Buffer
	w = csv.NewWriter(&csvTail)
	w.WriteAll(tab.rows[2:])
	w.Write(tab.rows[0][:3]) // a short row: a reject whose line must stay right
	w.Flush()
	csvLines := strings.Count(csvTail.String(), "\n")

	jsonl := marriageLines(t, 20)
	jsonlHead := strings.Join(jsonl[:5], "\n") + "\n"
	jsonlTail := strings.Join(jsonl[5:], "\n") + "\nnot json\n"

	const quotedLine = 1000 // bytes a line of the quoted cell
	for _, tc := range []struct {
		name   string
		format Format
		long   repeat // the long line(s), inserted as line 4 (CSV) or 6 (JSONL)
		lines  int    // how many
		detail string
	}{
		{"csv: a long cell", CSV, repeat{"租赁登记备案,", "x", ",1\n", longLineBytes}, 1, "line longer than 1 MiB"},
		{"csv: a quoted cell over many lines", CSV,
			repeat{"租赁登记备案,\"", strings.Repeat("x", quotedLine-1) + "\n", "\",1\n", longLineBytes / quotedLine}, longLineBytes/quotedLine + 1,
			fmt.Sprintf("row longer than 1 MiB (lines 4–%d were read as one row)", 4+longLineBytes/quotedLine)},
		{"jsonl: a long line", JSONL, repeat{`{"specversion":"1.0","id":"`, "x", "\"}\n", longLineBytes}, 1, "line longer than 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, "export."+string(tc.format))
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			head, tail := csvHead.String(), csvTail.String()
			badLine, lastLine, valid := 4, 3+tc.lines+csvLines, len(tab.rows)
			if tc.format == JSONL {
				head, tail = jsonlHead, jsonlTail
				badLine, lastLine, valid = 6, 6+len(jsonl)-5+1, len(jsonl)
			}
			f.WriteString(head)
			tc.long.writeTo(t, f)
			f.WriteString(tail)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			cfg := Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}}
			if tc.format == JSONL {
				cfg.Source, cfg.Mapping = schemas.Marriage, nil
			}
			var rep *Report
			alloc := allocated(func() { rep, err = Run(context.Background(), cfg) })
			if err != nil {
				t.Fatal(err)
			}
			if alloc > longLineBytes/2 {
				t.Errorf("the import allocated %d MB for a line of %d MB", alloc>>20, longLineBytes>>20)
			}
			rejects := map[int]Reject{}
			for _, r := range rep.Rejects {
				rejects[r.Line] = r
			}
			if r := rejects[badLine]; r.Reason != ReasonMalformedRow || r.Detail != tc.detail {
				t.Errorf("rejects %v; want line %d malformed: %q", rep.Rejects, badLine, tc.detail)
			}
			if r := rejects[lastLine]; r.Reason == "" || len(rejects) != 2 {
				t.Errorf("rejects %v; want line %d's as well, and no others", rep.Rejects, lastLine)
			}
			if rep.Sent != valid {
				t.Errorf("%d sent, want %d", rep.Sent, valid)
			}
			sent := decodeAll(t, testenv.Records(t, addr, schemas.Topic(cfg.Source)))
			if tc.format == JSONL {
				want := map[string]bool{}
				for _, l := range jsonl {
					ev, err := schemas.Decode(schemas.Input{Value: []byte(l)})
					if err != nil {
						t.Fatal(err)
					}
					want[ev.ID] = true
				}
				for _, ev := range sent {
					if !want[ev.ID] {
						t.Errorf("event %s on the topic is not one of the file's, or is there twice", ev.ID)
					}
					delete(want, ev.ID)
				}
				if len(want) > 0 {
					t.Errorf("%d of the file's events are not on the topic", len(want))
				}
			} else {
				layout := layoutsOr(m.Time.Layout, timeLayouts)[0]
				want := map[string]int{}
				for _, ev := range events {
					want[fingerprint(t, ev, layout)]++
				}
				for _, ev := range sent {
					if fp := fingerprint(t, ev, layout); want[fp] > 0 {
						want[fp]--
					} else {
						t.Errorf("a %s event on the topic is not one of the file's, or is there twice", ev.Type)
					}
				}
				if len(sent) != len(events) {
					t.Errorf("%d events on the topic, want %d", len(sent), len(events))
				}
			}
			held := rejectedText(t, rep.RejectsFile, badLine)
			wantHeld := tc.long.head + strings.Repeat(tc.long.unit, 4096)
			wantHeld = string(trimPartialRune([]byte(wantHeld[:4096])))
			if !strings.HasPrefix(held, wantHeld+"… [cut: the row is ") || len(held) > 4200 {
				t.Errorf("the rejects file holds %.60q… (%d bytes) for the long line, want its first 4 KiB, marked as cut", held, len(held))
			}
		})
	}
}

// rejectedText is what the rejects file holds of line n: its text, in
// the first column after the reject's own.
func rejectedText(t testing.TB, path string, n int) string {
	t.Helper()
	rj, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(bytes.NewReader(rj[len(bom):]))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[1:] {
		if r[0] == fmt.Sprint(n) {
			return r[5]
		}
	}
	t.Fatalf("the rejects file has no line %d", n)
	return ""
}

// TestLongLineResume: an import interrupted after a line too long to read
// resumes with the lines after it numbered as before: every event is on
// the topic exactly once. Empty lines before a long line do not count
// into it.
func TestLongLineResume(t *testing.T) {
	m, tab, events := housingRows(t, 400)
	m.Encoding = "gbk"
	half := len(tab.rows) / 2
	file := tempFile(t, "housing.csv")
	writeCSV(t, file, table{header: tab.header, rows: tab.rows[:half]}, gbk)
	writeCSV(t, file+".rest", table{rows: tab.rows[half:]}, gbk)
	rest, err := os.ReadFile(file + ".rest")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const empty = maxRowBytes/2 + 1 // empty lines, more than maxRowBytes
	repeat{strings.Repeat("\r\n", empty), "x", "\n", 2 * maxRowBytes}.writeTo(t, f)
	f.Write(rest[1:]) // without the empty line of the empty header
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	longLine := 1 + half + empty + 1

	addr := testenv.Kafka(t, partitions)
	cfg := Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}, BatchSize: 10, ChunkSize: 20,
		CheckpointInterval: time.Nanosecond}
	crash := errors.New("crash")
	first := cfg
	stopAt := half/cfg.ChunkSize + 2 // the chunk sent after the long line's
	if stopAt*cfg.ChunkSize >= len(events) {
		t.Fatalf("%d events are too few", len(events))
	}
	first.hookOK = func(n int) error {
		if n >= stopAt {
			return crash
		}
		return nil
	}
	if _, err := Run(context.Background(), first); !errors.Is(err, crash) {
		t.Fatalf("the first run was not interrupted: %v", err)
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.AlreadySent+rep.Sent != len(events) {
		t.Errorf("resumed %v, %d already sent, %d sent; want %d in all", rep.Resumed, rep.AlreadySent, rep.Sent, len(events))
	}
	if len(rep.Rejects) != 1 || rep.Rejects[0].Line != longLine || rep.Rejects[0].Detail != tooLongDetail {
		t.Errorf("rejects %v; want line %d, too long", rep.Rejects, longLine)
	}
	byID := map[string]int{}
	for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.Housing))) {
		byID[ev.ID]++
	}
	if len(byID) != len(events) {
		t.Errorf("%d distinct events on the topic, want %d", len(byID), len(events))
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("event %s is on the topic %d times", id, n)
		}
	}
}

// workbookPart is a part of a generated workbook: its content, or, if
// declared, a size its zip entry declares instead (its content then
// stands for the start of a larger part).
type workbookPart struct {
	content  repeat
	declared uint64
}

// writeWorkbook writes a workbook of one sheet, Sheet1, with parts
// replacing or added to the few a workbook needs. Its parts are
// compressed as far as deflate goes, so a bomb of gigabytes stays small.
func writeWorkbook(t testing.TB, path string, parts map[string]workbookPart) {
	t.Helper()
	all := map[string]workbookPart{
		"[Content_Types].xml": {content: repeat{head: `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>`}},
		"_rels/.rels":         {content: repeat{head: `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>`}},
		"xl/workbook.xml":     {content: repeat{head: `<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>`}},
		"xl/_rels/workbook.xml.rels": {content: repeat{head: `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>` +
			`<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>`}},
	}
	maps.Copy(all, parts)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	z.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	for name, p := range all {
		if p.declared == 0 {
			pw, err := z.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			p.content.writeTo(t, pw)
			continue
		}
		var data bytes.Buffer
		fw, _ := flate.NewWriter(&data, flate.BestSpeed)
		p.content.writeTo(t, fw)
		fw.Close()
		pw, err := z.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(nil),
			CompressedSize64: uint64(data.Len()), UncompressedSize64: p.declared})
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(data.Bytes())
	}
	if err := errors.Join(z.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestWorkbookLimits: a workbook that expands past what an export can
// need — a zip bomb — fails to open with an error naming the part and
// the limit, before it is read and without using memory in proportion
// to it; within the limits a workbook imports.
func TestWorkbookLimits(t *testing.T) {
	m, tab, _ := housingRows(t, 5)
	var header strings.Builder
	header.WriteString(`<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">`)
	for _, h := range tab.header {
		fmt.Fprintf(&header, `<c t="inlineStr"><is><t>%s</t></is></c>`, h)
	}
	header.WriteString(`</row><row r="2"><c t="s" s="1"><v>0</v></c></row>`)
	sheetHead := header.String()
	const sheetTail = `</sheetData></worksheet>`
	sheet := func(r repeat) map[string]workbookPart {
		return map[string]workbookPart{"xl/worksheets/sheet1.xml": {content: repeat{sheetHead + r.head, r.unit, r.tail + sheetTail, r.n}}}
	}
	const bomb = 64 << 20 // bytes of XML, where a bomb is made of bytes
	const stylesHead = `<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">`
	styles := func(r repeat) map[string]workbookPart {
		return map[string]workbookPart{"xl/styles.xml": {content: repeat{stylesHead + r.head, r.unit, r.tail + `</styleSheet>`, r.n}}}
	}
	at := func(part string, off int) string {
		return fmt.Sprintf("workbook part %s: the XML at byte %d ", part, off)
	}
	const sheet1 = "xl/worksheets/sheet1.xml"
	styleSpaces := styles(repeat{"<cellXfs>", " ", "</cellXfs>", bomb + 1})
	for _, tc := range []struct {
		name  string
		parts map[string]workbookPart
		err   string // "" for a workbook that imports
	}{
		{"white space between rows", sheet(repeat{"", " ", "", bomb}), at(sheet1, len(sheetHead))},
		{"a cell's text", sheet(repeat{`<row r="3"><c t="inlineStr"><is><t>`, "A", `</t></is></c></row>`, bomb}),
			at(sheet1, len(sheetHead)+len(`<row r="3"><c t="inlineStr"><is><t>`))},
		{"a comment", sheet(repeat{`<!--`, "<a>", `-->`, bomb / 3}), at(sheet1, len(sheetHead))},
		{"a document type", sheet(repeat{`<!DOCTYPE x [`, "<!ENTITY a 'b'>", `]>`, 1}),
			"workbook part " + sheet1 + ": it declares a document type"},
		{"a row of many cells", sheet(repeat{`<row r="3">`, `<c><v>1</v></c>`, `</row>`, bomb / 15}),
			fmt.Sprintf("workbook part xl/worksheets/sheet1.xml: the row at byte %d has more than 16777216 bytes of XML", len(sheetHead))},
		{"a sheet over the workbook's limit", map[string]workbookPart{"xl/worksheets/sheet1.xml": {content: repeat{head: sheetHead}, declared: 5 << 30}},
			"workbook part xl/worksheets/sheet1.xml expands to 5368709120 bytes, over the limit of 4294967296"},
		{"white space in the styles", styleSpaces,
			fmt.Sprintf("workbook part xl/styles.xml expands to %d bytes, over the limit of 67108864", styleSpaces["xl/styles.xml"].content.size())},
		{"white space in the styles within their size", styles(repeat{"<cellXfs>", " ", "</cellXfs>", 2 << 20}),
			at("xl/styles.xml", len(stylesHead+"<cellXfs>"))},
		{"a million cell formats", styles(repeat{"<cellXfs>", "<xf/>", "</cellXfs>", maxInMemoryElements}),
			"workbook part xl/styles.xml: the parts held in memory have more than 1000000 XML elements"},
		{"many shared strings", map[string]workbookPart{"xl/sharedStrings.xml": {content: repeat{`<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">`, "<si/>", "</sst>", maxSharedStrings + 1}}},
			"workbook part xl/sharedStrings.xml: it holds more than 5000000 shared strings"},
		{"within the limits", map[string]workbookPart{
			"xl/sharedStrings.xml": {content: repeat{`<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">`, "<si><t>x</t></si>", "</sst>", 100_000}},
			"xl/styles.xml":        {content: repeat{`<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><!-- a > b --><cellXfs>`, `<xf numFmtId="0"/>`, `</cellXfs></styleSheet>`, 10_000}},
			"xl/worksheets/sheet1.xml": {content: repeat{sheetHead + `<?pi a>b?><row r="3" spans="1:2"/>`,
				`<row><c t="inlineStr"><is><t><![CDATA[<x>]]></t></is></c></row>` + "\n  ", `<row r="20010" />` + sheetTail, 20_000}},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, "export.xlsx")
			parts := sheet(repeat{})
			maps.Copy(parts, tc.parts)
			writeWorkbook(t, file, parts)
			var err error
			alloc := allocated(func() {
				_, err = Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
			})
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if alloc > 16<<20 {
				t.Errorf("importing the workbook allocated %d MB", alloc>>20)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v; want one saying %q", err, tc.err)
			}
			if !strings.Contains(err.Error(), "a larger export imports as CSV") {
				t.Errorf("error %v does not say how to import a larger export", err)
			}
		})
	}
}

// TestWorkbookLimitsLeaveRoom: the largest export a department makes —
// a million rows of twenty columns, as a spreadsheet program writes them
// — is within the workbook limits.
func TestWorkbookLimitsLeaveRoom(t *testing.T) {
	const rows, cols = 1_000_000, 20
	var row strings.Builder
	fmt.Fprintf(&row, `<row r="%d" spans="1:%d" x14ac:dyDescent="0.25">`, rows, cols)
	for c := range cols {
		fmt.Fprintf(&row, `<c r="%c%d" s="12" t="s"><v>%d</v></c>`, 'A'+c, rows, rows*cols)
	}
	row.WriteString("</row>")
	if n := row.Len(); n*rows > maxWorkbookBytes/2 || n > maxRowXMLBytes {
		t.Errorf("a row of %d bytes: a million of them are %d bytes, the workbook limit %d", n, n*rows, maxWorkbookBytes)
	}
	// Half of the cells distinct texts (IDs, names, addresses), the
	// others repeated.
	if distinct := rows * 4; distinct > maxSharedStrings {
		t.Errorf("%d distinct texts over the limit of %d", distinct, maxSharedStrings)
	}
}

// TestCSVRowsAfterLongOnes: rows longer than maxRowBytes, one after
// another, after empty lines, and at the end of the file with a quote
// never closed, are each one malformed row with its line numbers, and the
// rows between them are read as they are, in either encoding.
func TestCSVRowsAfterLongOnes(t *testing.T) {
	long := strings.Repeat("长", maxRowBytes/3+1)
	quoted := `"` + strings.Repeat(strings.Repeat("x", 99)+"\r\n", maxRowBytes/100+1) + `"`
	text := "a,b\n" + // 1
		"1,2\n" + // 2
		"3," + long + "\n" + // 3
		"4," + quoted + "\n" + // 4–10490
		"5,6\r\n" + // 10491
		strings.Repeat("\n", maxRowBytes+1) + // 10492–1059068
		"7,\"\"\"" + long + "\"\n" + // 1059069
		"8,9\n" + // 1059070
		"\"" + long + "\n0,1\n" // 1059071–1059072, never closed
	want := []string{
		"2: [1 2]",
		"3: line longer than 1 MiB",
		"4: row longer than 1 MiB (lines 4–10490 were read as one row)",
		"10491: [5 6]",
		"1059069: line longer than 1 MiB",
		"1059070: [8 9]",
		"1059071: row longer than 1 MiB (lines 1059071–1059072 were read as one row); a quote is never closed",
	}
	for _, enc := range []string{encodingUTF8, encodingGBK} {
		t.Run(enc, func(t *testing.T) {
			b := []byte(text)
			if enc == encodingGBK {
				var err error
				if b, err = simplifiedchinese.GBK.NewEncoder().Bytes(b); err != nil {
					t.Fatal(err)
				}
			}
			file := tempFile(t, "rows.csv")
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			src, err := openCSV(file, enc, ',', 1)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var got []string
			for {
				r, err := src.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.malformed != "" {
					got = append(got, fmt.Sprintf("%d: %s", r.line, r.malformed))
				} else {
					got = append(got, fmt.Sprintf("%d: %v", r.line, r.cells))
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if sum := sha256.Sum256(b); src.digest() != hex.EncodeToString(sum[:]) {
				t.Error("the digest is not the file's")
			}
		})
	}
}

// TestRowEnd: a CSV record ends at the first line end outside quotes,
// however its text is split.
func TestRowEnd(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		end, lines int // end -1: the record runs on
		quoted     bool
	}{
		{"plain", "a,b\nc", 4, 0, false},
		{"CRLF", "a,b\r\nc", 5, 0, false},
		{"quoted line ends", "a,\"b\nc\r\n\",d\ne", 12, 2, false},
		{"escaped quotes", "\"a\"\"\n\"\"\",b\nc", 11, 1, false},
		{"text after a closing quote", "\"a\"b\nc", 5, 0, false},
		{"bare quote", "a\"b\nc", 4, 0, false},
		{"quote never closed", "\"a\nb\n", -1, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for split := range len(tc.text) + 1 {
				e := rowEnd{cellStart: true, comma: ','}
				end := e.scan([]byte(tc.text[:split]))
				if end < 0 {
					if end = e.scan([]byte(tc.text[split:])); end >= 0 {
						end += split
					}
				}
				if end != tc.end || e.lines != tc.lines || e.quoted != tc.quoted {
					t.Errorf("split at %d: end %d, %d lines, quoted %v; want %d, %d, %v", split, end, e.lines, e.quoted, tc.end, tc.lines, tc.quoted)
				}
			}
		})
	}
}
