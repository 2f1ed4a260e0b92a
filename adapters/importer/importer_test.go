package importer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"

	"github.com/pophub/pophub/hub/access"
	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestExampleMappings: every shipped mapping turns its department's table
// back into exactly the events the table was written from, in every file
// format and encoding, validating first and streaming, with legacy
// 15-digit IDs upgraded.
func TestExampleMappings(t *testing.T) {
	for i, src := range schemas.Sources {
		format, enc := CSV, []string{utf8Plain, utf8BOM, gbk}[i%3]
		if i%4 == 3 {
			format = XLSX
		}
		mode, stream := "validating first", i%2 == 1
		if stream {
			mode = "streaming"
		}
		t.Run(fmt.Sprintf("%s/%s/%s/%s", src, format, enc, mode), func(t *testing.T) {
			t.Parallel()
			m := mustMapping(t, src)
			persons := 300
			if src == schemas.Health {
				persons = 3000 // deaths are rare
			}
			tab, events := render(t, m, population(t, persons, src))
			if len(events) < 5 {
				t.Fatalf("only %d events of %s", len(events), src)
			}
			// Every fifth subject in its legacy 15-digit form.
			upgrades := 0
			subj := 1
			for j, row := range tab.rows {
				if j%5 == 0 {
					if old, ok := legacy15(row[subj]); ok {
						row[subj] = old
						upgrades++
					}
				}
			}
			file := tempFile(t, "export."+string(format))
			if format == XLSX {
				m.HeaderRow = 2
				writeXLSX(t, file, tab)
			} else {
				writeCSV(t, file, tab, enc)
			}
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: src, File: file, Mapping: m, Brokers: []string{addr}, Stream: stream})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Rejects) > 0 {
				t.Fatalf("rejects: %v", rep.Rejects[:min(5, len(rep.Rejects))])
			}
			if rep.Read != len(events) || rep.Valid != len(events) || rep.Sent != len(events) || rep.Upgraded != upgrades {
				t.Errorf("report %+v; want %d read, valid and sent, %d upgraded", rep, len(events), upgrades)
			}
			layout := layoutsOr(m.Time.Layout, timeLayouts)[0]
			want := map[string]int{}
			for _, ev := range events {
				want[fingerprint(t, ev, layout)]++
			}
			for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(src))) {
				fp := fingerprint(t, ev, layout)
				if want[fp] == 0 {
					t.Fatalf("a %s event on the topic is not one of the table's (or is there twice)", ev.Type)
				}
				want[fp]--
			}
		})
	}
}

// housingRows writes a housing table (the example mapping's columns)
// from synthetic events.
func housingRows(t testing.TB, persons int) (*Mapping, table, []schemas.Event) {
	t.Helper()
	m := mustMapping(t, schemas.Housing)
	tab, events := render(t, m, population(t, persons, schemas.Housing))
	return m, tab, events
}

func colIndex(t testing.TB, tab table, name string) int {
	t.Helper()
	for i, h := range tab.header {
		if h == name {
			return i
		}
	}
	t.Fatalf("no column %s", name)
	return -1
}

// TestBadLines: every bad line is reported with its line, reason, field
// and column, written to the rejects file with its original cells, and
// not sent; the good lines are sent.
func TestBadLines(t *testing.T) {
	m, tab, events := housingRows(t, 200)
	good := len(tab.rows)
	set := func(row []string, col, v string) []string {
		out := append([]string(nil), row...)
		out[colIndex(t, tab, col)] = v
		return out
	}
	var rental, property []string
	for _, r := range tab.rows {
		switch r[colIndex(t, tab, "业务类型")] {
		case "租赁登记备案":
			rental = r
		case "产权登记":
			property = r
		}
	}
	if rental == nil || property == nil {
		t.Fatal("no rental or property registration in the population")
	}
	subject := rental[colIndex(t, tab, "权利人身份证号")]
	badCheck := subject[:17] + map[bool]string{true: "1", false: "2"}[subject[17] != '1']
	bad := []struct {
		row                   []string
		reason, field, column string
	}{
		{set(rental, "业务类型", "违章建筑"), ReasonUnmappedValue, "type", "业务类型"},
		{set(set(rental, "权利人身份证号", badCheck), "业务编号", "b2"), schemas.ReasonInvalidSubject, "subject", "权利人身份证号"},
		{set(rental, "登记时间", "2024-13-45 10:00:00"), ReasonInvalidValue, "time", "登记时间"},
		{set(set(rental, "租期起", "下个月"), "业务编号", "b4"), ReasonInvalidValue, "data.start", "租期起"},
		{set(set(rental, "房屋坐落区划代码", "123"), "业务编号", "b5"), schemas.ReasonInvalidData, "data.address_code", "房屋坐落区划代码"},
		{set(rental, "租期止", "2099/1/1"), ReasonDuplicateID, "id", "版本号"},
		{set(rental, "版本号", "v2"), ReasonInvalidValue, "id", "版本号"},
		{set(set(property, "取得方式", "抢来的"), "业务编号", "b8"), ReasonUnmappedValue, "data.acquired", "取得方式"},
		{rental[:3], ReasonMalformedRow, "", ""},
	}
	// Bad rows go after the good ones; line 1 is the header. The last
	// line repeats the rental exactly: no reject, and not sent twice.
	var want []string
	for i, b := range bad {
		tab.rows = append(tab.rows, b.row)
		want = append(want, fmt.Sprintf("%d %s %s %s", good+2+i, b.reason, b.field, b.column))
	}
	tab.rows = append(tab.rows, rental)
	wantRepeats := []Repeat{{Line: len(tab.rows) + 1, First: slices.IndexFunc(tab.rows, func(r []string) bool { return slices.Equal(r, rental) }) + 2}}
	file := tempFile(t, "housing.csv")
	writeCSV(t, file, tab, gbk)
	addr := testenv.Kafka(t, partitions)
	before := time.Now().Truncate(time.Millisecond)
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	var got []string
	for _, r := range rep.Rejects {
		got = append(got, fmt.Sprintf("%d %s %s %s", r.Line, r.Reason, r.Field, r.Column))
		if strings.Contains(r.String(), subject) || strings.Contains(r.String(), badCheck) {
			t.Errorf("reject %q shows a citizen ID", r)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rejects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.Read != good+len(bad)+1 || rep.Valid != good || rep.Sent != good {
		t.Errorf("report: %d read, %d valid, %d sent; want %d, %d, %d", rep.Read, rep.Valid, rep.Sent, good+len(bad)+1, good, good)
	}
	if !slices.Equal(rep.Repeats, wantRepeats) || rep.Repeated != 1 {
		t.Errorf("%d repeated %v, want %v", rep.Repeated, rep.Repeats, wantRepeats)
	}
	sent := testenv.Records(t, addr, schemas.Topic(schemas.Housing))
	if n := len(sent); n != len(events) {
		t.Errorf("%d records on the topic, want %d", n, len(events))
	}
	for _, r := range sent { // time-based retention reads the timestamp
		if r.Timestamp.Before(before) || r.Timestamp.After(after) {
			t.Errorf("record at offset %d stamped %s, not when it was sent", r.Offset, r.Timestamp)
		}
	}
	for _, s := range []string{"unmapped_value 2", "malformed_row 1", "invalid_value 3", fmt.Sprintf("%d sent", good)} {
		if !strings.Contains(rep.Summary(), s) {
			t.Errorf("summary %q lacks %q", rep.Summary(), s)
		}
	}

	// The rejects file: UTF-8 with a byte order mark, the reasons, then
	// the original cells.
	b, err := os.ReadFile(rep.RejectsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(bom)) {
		t.Error("the rejects file has no byte order mark")
	}
	cr := csv.NewReader(bytes.NewReader(b[len(bom):]))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(bad) || strings.Join(recs[0][5:], ",") != strings.Join(tab.header, ",") {
		t.Fatalf("rejects file: %d records, header %v", len(recs), recs[0])
	}
	for i, r := range recs[1:] {
		if r[0] != fmt.Sprint(good+2+i) || r[1] != bad[i].reason || strings.Join(r[5:], ",") != strings.Join(bad[i].row, ",") {
			t.Errorf("rejects file record %d: %v", i, r[:5])
		}
	}
}

// TestManyRejects: a file of mostly bad lines — a wrong mapping, a broken
// export — is reported in full without being held in memory: the report
// lists the first ListRejects rejects and counts them all, the rejects
// file holds every one, and a run that stops midway leaves the last
// complete rejects file in place and no partial one beside it.
func TestManyRejects(t *testing.T) {
	const n, list = 12 * chunkRows, 100
	lines := marriageLines(t, n)
	bad := 0
	for i := range lines {
		if i%10 == 9 {
			lines[i] = "not json"
			bad++
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "marriage.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, partitions)
	cfg := Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}, ListRejects: list}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != bad || len(rep.Rejects) != list || rep.ByReason()[schemas.ReasonNotJSON] != bad || rep.Sent != n-bad {
		t.Errorf("report: %d rejected, %d listed, by reason %v, %d sent; want %d, %d, all not_json, %d",
			rep.Rejected, len(rep.Rejects), rep.ByReason(), rep.Sent, bad, list, n-bad)
	}
	for i, r := range rep.Rejects {
		if r.Line != 10*(i+1) {
			t.Fatalf("listed reject %d is line %d, want %d: the first ones are listed, in order", i, r.Line, 10*(i+1))
		}
	}
	if want := fmt.Sprintf("%d rejected (not_json %d)", bad, bad); !strings.Contains(rep.Summary(), want) {
		t.Errorf("summary %q lacks %q", rep.Summary(), want)
	}
	complete, err := os.ReadFile(rep.RejectsFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.Count(complete, []byte("\n")); got != 1+bad {
		t.Errorf("the rejects file has %d lines, want a header and %d", got, bad)
	}

	// A streamed run that fails after its first chunk, with rejects found
	// but the file not read to its end, leaves the complete file alone.
	c := cfg
	c.Stream, c.ChunkSize = true, 1000
	crash := errors.New("crash")
	c.hookOK = func(int) error { return crash }
	os.Remove(file + ".pophub-import.json")
	if _, err := Run(context.Background(), c); !errors.Is(err, crash) {
		t.Fatalf("interrupted run: %v", err)
	}
	if b, err := os.ReadFile(rep.RejectsFile); err != nil || !bytes.Equal(b, complete) {
		t.Errorf("the interrupted run changed the rejects file (%v)", err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.rejects.csv.*"))
	if len(names) > 0 {
		t.Errorf("the interrupted run left %v", names)
	}
}

// TestEncodings: GBK and UTF-8 files are detected or taken as told, the
// flag (Config.Encoding) over the mapping, an explicit auto detecting even
// when the mapping names an encoding; a file read in the wrong encoding is
// rejected row by row, not sent garbled, and one whose header is read in
// the wrong one says so.
func TestEncodings(t *testing.T) {
	m := mustMapping(t, schemas.PublicSecurity)
	tab, events := render(t, m, population(t, 40, schemas.PublicSecurity))
	for _, tc := range []struct {
		name                   string
		written, mapping, told string
		wantValid              bool
		wantErr                string
	}{
		{"utf-8 detected", utf8Plain, "", "", true, ""},
		{"utf-8 with BOM detected", utf8BOM, "", "", true, ""},
		{"gbk detected", gbk, "", "", true, ""},
		{"gbk told", gbk, "", "gbk", true, ""},
		{"utf-8 with BOM told gbk", utf8BOM, "", "gbk", true, ""}, // a BOM settles it
		{"gbk told utf-8", gbk, "", "utf-8", false, ""},
		{"gbk mapping", gbk, "gbk", "", true, ""},
		{"utf-8 with a gbk mapping told auto", utf8Plain, "gbk", "auto", true, ""},
		{"gbk with a utf-8 mapping told auto", gbk, "utf-8", "auto", true, ""},
		{"utf-8 with a gbk mapping told utf-8", utf8Plain, "gbk", "utf-8", true, ""},
		{"utf-8 with a gbk mapping", utf8Plain, "gbk", "", false, "the file is UTF-8, but gbk is set as its encoding"},
		{"utf-8 told gbk", utf8Plain, "auto", "gbk", false, "the file is UTF-8, but gbk is set as its encoding"},
		{"gbk told utf-8 by the mapping", gbk, "utf-8", "", false, "the file may not be utf-8; try --encoding auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, "hukou.csv")
			writeCSV(t, file, tab, tc.written)
			m := *m
			m.Encoding = tc.mapping
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: &m, Encoding: tc.told, DryRun: true})
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
			case tc.wantValid:
				if err != nil || rep.Valid != len(events) {
					t.Fatalf("%v; report %+v, want %d valid", err, rep, len(events))
				}
			case err == nil && rep.Valid != 0:
				t.Fatalf("%d rows valid in the wrong encoding", rep.Valid)
			}
		})
	}
	// A header that is wrong in its own encoding gets no hint.
	file := tempFile(t, "hukou.csv")
	writeCSV(t, file, table{header: tab.header[1:], rows: nil}, gbk)
	m2 := *m
	m2.Encoding = "gbk"
	_, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: &m2, DryRun: true})
	if err == nil || strings.Contains(err.Error(), "--encoding") {
		t.Errorf("error %v, want a missing column without an encoding hint", err)
	}
}

// TestBlankCSVLines: lines that hold no value — empty, only commas (a
// spreadsheet's empty row saved as CSV), only white space — are skipped
// and not counted, as blank rows of a workbook are; the lines around them
// keep their line numbers.
// TestFilesSavedOtherwise: a file saved in a form the import does not
// read — UTF-16 ("Unicode text"), Excel 97-2003, old Mac line ends — is
// refused with what it is and how to save it, not with a header that
// lacks every column.
func TestFilesSavedOtherwise(t *testing.T) {
	m := mustMapping(t, schemas.Housing)
	m.Encoding = ""
	const text = "业务类型,权利人身份证号,登记时间\r\n租赁登记备案,230102199001011230,2026-02-20 10:00:00\r\n"
	utf16 := func(order binary.AppendByteOrder, bom []byte) []byte {
		b := bytes.Clone(bom)
		for _, u := range utf16.Encode([]rune(text)) {
			b = order.AppendUint16(b, u)
		}
		return b
	}
	for _, tc := range []struct {
		name, file string
		content    []byte
		want       string
	}{
		{"utf-16 little-endian", "housing.csv", utf16(binary.LittleEndian, []byte{0xff, 0xfe}), "the file is UTF-16: save it as UTF-8 or GBK"},
		{"utf-16 big-endian", "housing.csv", utf16(binary.BigEndian, []byte{0xfe, 0xff}), "the file is UTF-16: save it as UTF-8 or GBK"},
		{"excel 97-2003", "housing.xls", []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, ".xls (Excel 97-2003) is not read: save it as .xlsx or CSV"},
		{"an unknown extension", "housing.dat", []byte(text), `the extension ".dat" is not .csv, .txt, .jsonl, .ndjson, .json, .xlsx or .xlsm: give the format`},
		{"old Mac line ends", "housing.csv", []byte(strings.ReplaceAll(text, "\r\n", "\r")), "the file uses CR line ends (old Mac): save it with Windows or Unix line ends"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, tc.file)
			if err := os.WriteFile(file, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestBlankCSVLines(t *testing.T) {
	m, tab, _ := housingRows(t, 50)
	m.Encoding = "utf-8"
	commas := strings.Repeat(",", len(tab.header)-1)
	for _, tc := range []struct {
		name, blank string
	}{
		{"empty", "\n"},
		{"only commas", commas + "\n"},
		{"only commas, CRLF", commas + "\r\n"},
		{"white space", "  \t\n"},
		{"white space between commas", " ," + strings.Repeat("\u3000,", len(tab.header)-2) + " \n"},
		{"quoted empty cells", strings.Repeat(`"",`, len(tab.header)-1) + `""` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w := csv.NewWriter(&b)
			w.Write(tab.header)
			w.WriteAll(tab.rows[:2])
			b.WriteString(tc.blank)
			w.WriteAll(tab.rows[2:])
			b.WriteString(tc.blank)
			w.Write(tab.rows[0][:3]) // a short row: rejected, on its own line
			w.Flush()
			b.WriteString(tc.blank)
			file := tempFile(t, "housing.csv")
			if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			rows := len(tab.rows)
			if rep.Read != rows+1 || rep.Valid != rows || rep.Rejected != 1 {
				t.Fatalf("%d read, %d valid, %d rejected (%v); want %d, %d and the short row", rep.Read, rep.Valid, rep.Rejected, rep.Rejects, rows+1, rows)
			}
			if r := rep.Rejects[0]; r.Reason != ReasonMalformedRow || r.Line != rows+4 {
				t.Errorf("reject %s; want line %d malformed", r, rows+4)
			}
		})
	}
}

// TestDateCells: a date field or the time column reads text only in its
// layouts — "1985" in a CSV file is no date — a workbook's number that is
// in none of them as an Excel serial day number, and a workbook's date
// cell (read from its value, see xlsxSource) whatever the layouts.
func TestDateCells(t *testing.T) {
	m, tab, _ := housingRows(t, 50)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	var rental []string
	for _, r := range tab.rows {
		if r[colIndex(t, tab, "业务类型")] == "租赁登记备案" {
			rental = r
			break
		}
	}
	if rental == nil {
		t.Fatal("no rental registration in the population")
	}
	startCol, timeCol := colIndex(t, tab, "租期起"), colIndex(t, tab, "登记时间")
	for _, tc := range []struct {
		name      string
		col       int
		value     string
		kind      cellKind
		want      string // in the event: data.start, or the time in UTC
		wantCause string // else the reject's detail says this
	}{
		{"text in the layout", startCol, "2024/3/1", textCell, `"start":"2024-03-01"`, ""},
		{"a year as text", startCol, "1985", textCell, "", "not a date in layout 2006/1/2"},
		{"a serial number as text", startCol, "45352", textCell, "", "not a date in layout 2006/1/2"},
		{"a serial number in a workbook", startCol, "45352", numberCell, `"start":"2024-03-01"`, ""},
		{"a workbook's number too large for a serial", startCol, "20240301", numberCell, "", "not a date in layout 2006/1/2"},
		{"a workbook's date cell", startCol, "2024-03-01 00:00:00", dateCell, `"start":"2024-03-01"`, ""},
		{"a workbook's date cell in the time column", timeCol, "2024-03-01 10:29:00", dateCell, "2024-03-01T02:29:00Z", ""},
		{"a serial number in the time column", timeCol, "45352.4375", numberCell, "2024-03-01T02:30:00Z", ""},
		{"a serial number as text in the time column", timeCol, "45352.4375", textCell, "", "not a time in layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cells := append([]string(nil), rental...)
			cells[startCol], cells[colIndex(t, tab, "租期止")] = "2024/3/1", "2030/1/1"
			cells[tc.col] = tc.value
			kinds := make([]cellKind, len(cells))
			kinds[tc.col] = tc.kind
			got := p.mapRow(2, cells, kinds, time.Now())
			switch {
			case tc.wantCause != "":
				if got.rej == nil || got.rej.Reason != ReasonInvalidValue || !strings.Contains(got.rej.Detail, tc.wantCause) {
					t.Errorf("reject %v, want invalid_value saying %q", got.rej, tc.wantCause)
				}
			case got.rej != nil:
				t.Errorf("rejected: %s", got.rej)
			case tc.col == timeCol:
				ev, err := schemas.Decode(schemas.Input{Value: got.value})
				if err != nil || ev.Time.UTC().Format(time.RFC3339) != tc.want {
					t.Errorf("time %v (%v), want %s", ev.Time.UTC(), err, tc.want)
				}
			case !bytes.Contains(got.value, []byte(tc.want)):
				t.Errorf("event %s lacks %s", got.value, tc.want)
			}
		})
	}
}

// TestXLSXDateCells: a workbook as office software saves it, with the
// time and the dates as numbers in date formats — built-in ones, whose
// display depends on the locale ("6/4/06 10:29"), and custom ones
// ("12-01-25") — or unformatted serial numbers, imports to the very events
// the table was written from.
func TestXLSXDateCells(t *testing.T) {
	m, tab, events := housingRows(t, 100)
	f := excelize.NewFile()
	defer f.Close()
	sheet := f.GetSheetName(0)
	style := func(s *excelize.Style) int {
		id, err := f.NewStyle(s)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	short := "yy-mm-dd"
	cn := "yyyy\"年\"m\"月\"d\"日\""
	dateTime := style(&excelize.Style{NumFmt: 22}) // m/d/yy h:mm
	dateStyles := []int{style(&excelize.Style{NumFmt: 14}), style(&excelize.Style{CustomNumFmt: &short}), style(&excelize.Style{CustomNumFmt: &cn}), 0}
	serial := func(wall string, layout string) float64 {
		w, err := time.Parse(layout, wall)
		if err != nil {
			t.Fatal(err)
		}
		return float64(w.Sub(time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC))) / float64(24*time.Hour)
	}
	set := func(col, row int, v any, style int) {
		c, err := excelize.CoordinatesToCellName(col+1, row)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.SetCellValue(sheet, c, v); err != nil {
			t.Fatal(err)
		}
		if style != 0 {
			if err := f.SetCellStyle(sheet, c, c, style); err != nil {
				t.Fatal(err)
			}
		}
	}
	timeCol := colIndex(t, tab, "登记时间")
	dateCols := []int{colIndex(t, tab, "租期起"), colIndex(t, tab, "租期止")}
	for i, h := range tab.header {
		set(i, 1, h, 0)
	}
	for r, row := range tab.rows {
		for i, v := range row {
			switch {
			case i == timeCol:
				set(i, r+2, serial(v, "2006-01-02 15:04:05"), dateTime)
			case slices.Contains(dateCols, i) && v != "":
				set(i, r+2, serial(v, "2006/1/2"), dateStyles[r%len(dateStyles)])
			default:
				set(i, r+2, v, 0)
			}
		}
	}
	file := tempFile(t, "housing.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, partitions)
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected > 0 || rep.Sent != len(events) {
		t.Fatalf("%d sent, %d rejected (%v); want %d sent", rep.Sent, rep.Rejected, rep.Rejects[:min(3, len(rep.Rejects))], len(events))
	}
	layout := layoutsOr(m.Time.Layout, timeLayouts)[0]
	want := map[string]int{}
	for _, ev := range events {
		want[fingerprint(t, ev, layout)]++
	}
	for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.Housing))) {
		fp := fingerprint(t, ev, layout)
		if want[fp] == 0 {
			t.Fatalf("a %s event on the topic is not one of the table's: %s", ev.Type, ev.Data)
		}
		want[fp]--
	}
}

// TestXLSXNumberCells: a workbook's number is read as the value the cell
// holds, not as its number format shows it — an area of 89.56 shown
// rounded to 90, or with a thousands separator, a version of 1 shown as
// 1.00, an amount shown with ¥ or a sign — except for the leading zeros of
// a format such as 00, with which codes kept as numbers are shown (民族
// 01), and a format that adds text or digits of its own, with which a
// clerk types a district's prefix once ("230102"000000 shows 1001 as
// 230102001001) or numbers households (H007): those are read as shown.
// Text stays as typed, dates as dates.
func TestXLSXNumberCells(t *testing.T) {
	f := excelize.NewFile()
	defer f.Close()
	sheet := f.GetSheetName(0)
	style := func(s *excelize.Style) int {
		id, err := f.NewStyle(s)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	custom := func(code string) int {
		return style(&excelize.Style{CustomNumFmt: &code})
	}
	for _, tc := range []struct {
		name  string
		value any
		style int
		want  string
	}{
		{"General", 89.56, 0, "89.56"},
		{"rounded to a whole number (0)", 89.56, style(&excelize.Style{NumFmt: 1}), "89.56"},
		{"thousands separator (#,##0.00)", 1234.5, style(&excelize.Style{NumFmt: 4}), "1234.5"},
		{"two decimals (0.00)", 1, style(&excelize.Style{NumFmt: 2}), "1"},
		{"percent (0%)", 0.125, style(&excelize.Style{NumFmt: 9}), "0.125"},
		{"a float's noise past 15 digits", 0.1 + 0.2, 0, "0.3"},
		{"a code with leading zeros (00)", 1, custom("00"), "01"},
		{"a district prefix typed in the format", 1001, custom(`"230102"000000`), "230102001001"},
		{"a household number with its letter", 7, custom(`"H"000`), "H007"},
		{"a letter escaped in the format", 7, custom(`\A00`), "A07"},
		{"a suffix after the number", 12, custom(`0"号"`), "12号"},
		{"an amount in yuan", 1234.5, custom(`"¥"#,##0.00`), "1234.5"},
		{"a minus escaped in the format", -89.56, custom(`0;\-0`), "-89.56"},
		{"red negatives in parentheses", -1234.5, custom("#,##0.00_);[Red](#,##0.00)"), "-1234.5"},
		{"a 12-digit code", 230102001001, 0, "230102001001"},
		{"text of digits", "007", 0, "007"},
		{"text of a number", "1.50", 0, "1.50"},
		{"a date", 45352, style(&excelize.Style{NumFmt: 14}), "2024-03-01 00:00:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, "numbers.xlsx")
			f.SetCellValue(sheet, "A1", "值")
			f.SetCellValue(sheet, "A2", tc.value)
			if err := f.SetCellStyle(sheet, "A2", "A2", tc.style); err != nil {
				t.Fatal(err)
			}
			if err := f.SaveAs(file); err != nil {
				t.Fatal(err)
			}
			s, err := openXLSX(file, sheetChoice{}, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r, err := s.next()
			if err != nil {
				t.Fatal(err)
			}
			if r.malformed != "" || len(r.cells) != 1 || r.cells[0] != tc.want {
				t.Errorf("cell read as %q (%s), want %q", r.cells, r.malformed, tc.want)
			}
		})
	}

	// The clerk's register: the area shown rounded, the version shown
	// with two decimals.
	m, tab, _ := housingRows(t, 60)
	var row []string
	for _, r := range tab.rows {
		if r[colIndex(t, tab, "业务类型")] == "产权登记" {
			row = r
			break
		}
	}
	if row == nil {
		t.Fatal("no property registration in the population")
	}
	area, version := colIndex(t, tab, "建筑面积"), colIndex(t, tab, "版本号")
	g := excelize.NewFile()
	defer g.Close()
	whole, err := g.NewStyle(&excelize.Style{NumFmt: 1})
	if err != nil {
		t.Fatal(err)
	}
	twoDec, err := g.NewStyle(&excelize.Style{NumFmt: 2})
	if err != nil {
		t.Fatal(err)
	}
	sheet = g.GetSheetName(0)
	for i, h := range tab.header {
		c, _ := excelize.CoordinatesToCellName(i+1, 1)
		g.SetCellValue(sheet, c, h)
		c, _ = excelize.CoordinatesToCellName(i+1, 2)
		switch i {
		case area:
			g.SetCellValue(sheet, c, 89.56)
			g.SetCellStyle(sheet, c, c, whole)
		case version:
			g.SetCellValue(sheet, c, 1)
			g.SetCellStyle(sheet, c, c, twoDec)
		default:
			g.SetCellValue(sheet, c, row[i])
		}
	}
	file := tempFile(t, "housing.xlsx")
	if err := g.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true}
	cfg.setDefaults()
	rep := &Report{}
	var events []string
	if err := validateFile(&cfg, rep, func(mp *mapped) error {
		if mp.rej == nil {
			events = append(events, string(mp.value))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rejects) > 0 || len(events) != 1 || !strings.Contains(events[0], `"area_m2":89.56`) {
		t.Errorf("events %q, rejects %v; want one event with area_m2 89.56", events, rep.Rejects)
	}
}

// TestXLSXMergedCells: a range of merged cells holds its value in its
// top-left cell only, and the sheet shows it over the whole range; the
// import reads it in every row of the range, as the clerk sees it — a
// business type merged down over the rows it groups, a registration time
// (a date cell) merged down too. A range merged in the title above the
// header fills nothing below it.
func TestXLSXMergedCells(t *testing.T) {
	m, tab, _ := housingRows(t, 60)
	var rentals [][]string
	for _, r := range tab.rows {
		if r[colIndex(t, tab, "业务类型")] == "租赁登记备案" {
			rentals = append(rentals, r)
		}
	}
	if len(rentals) < 3 {
		t.Fatal("fewer than three rental registrations in the population")
	}
	m.HeaderRow = 2
	typeCol, timeCol := colIndex(t, tab, "业务类型"), colIndex(t, tab, "登记时间")
	f := excelize.NewFile()
	defer f.Close()
	sheet := f.GetSheetName(0)
	dateTime, err := f.NewStyle(&excelize.Style{NumFmt: 22})
	if err != nil {
		t.Fatal(err)
	}
	cellName := func(col, row int) string {
		c, err := excelize.CoordinatesToCellName(col+1, row)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f.SetCellValue(sheet, "A1", "租赁登记（内部资料）")
	if err := f.MergeCell(sheet, "A1", cellName(len(tab.header)-1, 1)); err != nil {
		t.Fatal(err)
	}
	for i, h := range tab.header {
		f.SetCellValue(sheet, cellName(i, 2), h)
	}
	at := time.Date(2026, 2, 20, 10, 0, 0, 0, time.UTC)
	serial := float64(at.Sub(time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC))) / float64(24*time.Hour)
	for r, row := range rentals[:3] {
		for i, v := range row {
			switch {
			case r > 0 && (i == typeCol || i == timeCol):
				// below the top-left cell of the merged range
			case i == timeCol:
				f.SetCellValue(sheet, cellName(i, r+3), serial)
				f.SetCellStyle(sheet, cellName(i, r+3), cellName(i, r+3), dateTime)
			default:
				f.SetCellValue(sheet, cellName(i, r+3), v)
			}
		}
	}
	for _, col := range []int{typeCol, timeCol} {
		if err := f.MergeCell(sheet, cellName(col, 3), cellName(col, 5)); err != nil {
			t.Fatal(err)
		}
	}
	file := tempFile(t, "housing.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true}
	cfg.setDefaults()
	rep := &Report{}
	var events [][]byte
	if err := validateFile(&cfg, rep, func(mp *mapped) error {
		if mp.rej == nil {
			events = append(events, mp.value)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rejects) > 0 || len(events) != 3 {
		t.Fatalf("%d events, rejects %v; want 3 events", len(events), rep.Rejects)
	}
	shanghai, _ := location("")
	for _, v := range events {
		ev, err := schemas.Decode(schemas.Input{Value: v})
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Date(2026, 2, 20, 10, 0, 0, 0, shanghai); ev.Type != schemas.RentalRegistered || !ev.Time.Equal(want) {
			t.Errorf("event %s at %v, want %s at %v", ev.Type, ev.Time, schemas.RentalRegistered, want)
		}
	}
}

// TestXLSXMergedAcrossColumns: a range merged across columns fills only
// its first column, down the rows it spans; the columns to its right are
// read empty. A clerk who merges 户主 over the next, unused, 备注 column
// does not mean the name to be read as a remark, and when that column is
// mapped to another field, copying the name into it would import it as
// that field.
func TestXLSXMergedAcrossColumns(t *testing.T) {
	f := excelize.NewFile()
	defer f.Close()
	sheet := f.GetSheetName(0)
	for cell, v := range map[string]string{
		"A1": "编号", "B1": "户主", "C1": "备注", "D1": "类型",
		"A2": "1", "B2": "张三", "D2": "迁入",
		"A3": "2",
		"A4": "3", "B4": "李四", "C4": "补录",
	} {
		f.SetCellValue(sheet, cell, v)
	}
	for _, r := range [][2]string{{"B2", "C3"}, {"D2", "D4"}} {
		if err := f.MergeCell(sheet, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	file := tempFile(t, "merged.xlsx")
	if err := f.SaveAs(file); err != nil {
		t.Fatal(err)
	}
	s, err := openXLSX(file, sheetChoice{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, want := range [][]string{
		{"1", "张三", "", "迁入"},
		{"2", "张三", "", "迁入"},
		{"3", "李四", "补录", "迁入"},
	} {
		r, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if r.malformed != "" || !slices.Equal(r.cells, want) {
			t.Errorf("row %d read as %q (%s), want %q", r.line, r.cells, r.malformed, want)
		}
	}
}

func TestIsDateFormat(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"yy-mm-dd", true},
		{`yyyy"年"m"月"d"日"`, true},
		{"[$-804]yyyy/m/d", true},
		{"h:mm:ss AM/PM", true},
		{"[h]:mm", true},
		{"General", false},
		{"0.00E+00", false},
		{"#,##0.00_);[Red](#,##0.00)", false},
		{`0" days"`, false},
		{`\d0`, false},
	} {
		if got := isDateFormat(tc.code); got != tc.want {
			t.Errorf("isDateFormat(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

// TestNumberFormatRead: a number is read as its format shows it only
// when the format adds text or digits of its own; rounding, separators,
// decimals, percent, leading zeros, signs and currencies leave it read by
// value, and dates as dates.
func TestNumberFormatRead(t *testing.T) {
	for _, tc := range []struct {
		code string
		want numberRead
	}{
		{"General", byValue},
		{"0", byValue},
		{"000000", byValue},
		{"#,##0.00", byValue},
		{"0.00%", byValue},
		{"0.00E+00", byValue},
		{"# ?/16", byValue},
		{"@", byValue},
		{`"¥"#,##0.00;"¥"\-#,##0.00`, byValue},
		{"[$€-407]#,##0.00", byValue},
		{`_(* #,##0_);_(* \(#,##0\);_(* "-"_);_(@_)`, byValue},
		{"#,##0.00_);[Red](#,##0.00)", byValue},
		{"[>=100]0;0.0", byValue},
		{"[DBNum1]General", byValue},
		{`"230102"000000`, asShown},
		{`"H"000`, asShown},
		{`\A00`, asShown},
		{`0"号"`, asShown},
		{`0" 元"`, asShown},
		{`General"人"`, asShown},
		{"A000", asShown},
		{"1000#", asShown},
		{`*x0`, asShown},
		{"yyyy-mm-dd", asDate},
		{`yyyy"年"m"月"d"日"`, asDate},
	} {
		if got := numberFormatRead(tc.code); got != tc.want {
			t.Errorf("numberFormatRead(%q) = %d, want %d", tc.code, got, tc.want)
		}
	}
}

// TestJSONL: one CloudEvent per line, no mapping; legacy subjects and
// spouse IDs are upgraded; bad lines are reported with the hub's reasons.
func TestJSONL(t *testing.T) {
	events := population(t, 200, schemas.Marriage)
	lines := encodeLines(t, events)
	upgrades := 0
	for i, ev := range events {
		if i%4 == 0 {
			if old, ok := legacy15(string(ev.Subject)); ok {
				lines[i] = strings.Replace(lines[i], `"subject":"`+string(ev.Subject)+`"`, `"subject":"`+old+`"`, 1)
				upgrades++
			}
		}
	}
	valid := len(lines)
	lines = append(lines, "", "not json", strings.Replace(lines[1], `"source":"marriage"`, `"source":"tax"`, 1), lines[2])
	file := tempFile(t, "marriage.jsonl")
	if err := os.WriteFile(file, []byte(bom+strings.Join(lines, "\r\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, partitions)
	rep, err := Run(context.Background(), Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Rejects {
		got = append(got, fmt.Sprintf("%d:%s", r.Line, r.Reason))
	}
	// The last line repeats line 3 exactly: sent once, and no reject.
	want := fmt.Sprintf("[%d:not_json %d:source_mismatch]", valid+2, valid+3)
	if fmt.Sprint(got) != want {
		t.Errorf("rejects %v, want %s", got, want)
	}
	if wantRep := []Repeat{{Line: valid + 4, First: 3}}; !slices.Equal(rep.Repeats, wantRep) || rep.Repeated != 1 {
		t.Errorf("%d repeated %v, want %v", rep.Repeated, rep.Repeats, wantRep)
	} else if s := rep.Repeats[0].String(); !strings.Contains(s, "repeats line 3") {
		t.Errorf("the repeat reads %q, want it to name line 3", s)
	}
	if rep.Sent != valid || rep.Upgraded != upgrades || upgrades == 0 {
		t.Errorf("sent %d, upgraded %d; want %d and %d", rep.Sent, rep.Upgraded, valid, upgrades)
	}
	for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.Marriage))) {
		if len(ev.Subject) != 18 {
			t.Fatal("a subject was sent in its legacy form")
		}
	}
}

// TestRejectLimit: a file with as many bad lines as the limit or more
// sends nothing, still reports every bad line and writes the rejects file,
// and leaves no checkpoint, so the corrected file imports afresh; under
// the limit, or with none, the good lines go.
func TestRejectLimit(t *testing.T) {
	events := population(t, 50, schemas.Marriage)
	lines := encodeLines(t, events)
	valid := len(lines)
	changed := events[2]
	changed.Time = changed.Time.Add(time.Hour)
	// The last line repeats an earlier one exactly: harmless, it counts
	// toward no limit; the one before reuses an id with other content.
	lines = append(lines, "not json", strings.Replace(lines[1], `"source":"marriage"`, `"source":"tax"`, 1), encodeLines(t, []schemas.Event{changed})[0], lines[3])
	const rejected = 3
	for _, tc := range []struct {
		name   string
		limit  int
		dryRun bool
		refuse bool
	}{
		{"no limit", 0, false, false},
		{"under the limit", rejected + 1, false, false},
		{"at the limit", rejected, false, true},
		{"any bad line", 1, false, true},
		{"dry run at the limit", rejected, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, "marriage.jsonl")
			if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			cfg := Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}, RejectLimit: tc.limit, DryRun: tc.dryRun}
			rep, err := Run(context.Background(), cfg)
			if tc.refuse != errors.Is(err, ErrTooManyRejects) || (!tc.refuse && err != nil) {
				t.Fatalf("error %v; want refused %v", err, tc.refuse)
			}
			if rep.Rejected != rejected || len(rep.Rejects) != rejected || rep.Refused() != tc.refuse {
				t.Errorf("%d rejects reported (%d listed), refused %v; want %d, %v", rep.Rejected, len(rep.Rejects), rep.Refused(), rejected, tc.refuse)
			}
			if rep.Repeated != 1 {
				t.Errorf("%d repeated, want 1", rep.Repeated)
			}
			if _, err := os.Stat(rep.RejectsFile); err != nil {
				t.Errorf("rejects file: %v", err)
			}
			want := valid
			if tc.refuse || tc.dryRun {
				want = 0
			}
			if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Marriage)); rep.Sent != want || n != int64(want) {
				t.Errorf("%d sent, %d records on the topic; want %d", rep.Sent, n, want)
			}
			if tc.refuse {
				if !strings.Contains(rep.Summary(), fmt.Sprintf("refused at the reject limit of %d: nothing sent", tc.limit)) {
					t.Errorf("summary %q does not say the import was refused", rep.Summary())
				}
				if _, err := os.Stat(cfg.File + ".pophub-import.json"); !os.IsNotExist(err) {
					t.Errorf("a refused import left a checkpoint (%v)", err)
				}
			}
		})
	}
	if _, err := Run(context.Background(), Config{Source: schemas.Marriage, File: "x.jsonl", DryRun: true, RejectLimit: -1}); err == nil || !strings.Contains(err.Error(), "reject limit -1 is negative") {
		t.Errorf("a negative reject limit: %v", err)
	}
	if _, err := Run(context.Background(), Config{Source: schemas.Marriage, File: "x.jsonl", Brokers: []string{"x:1"}, Stream: true, RejectLimit: 5}); err == nil || !strings.Contains(err.Error(), "streamed import cannot refuse a file at a reject limit") {
		t.Errorf("a reject limit on a streamed import: %v", err)
	}
}

// TestResume interrupts imports in the ways a run can stop — a crash
// right after Kafka acknowledged a chunk (before any checkpoint, and after
// one), a cancelled context, a resumed run that stops again — and resumes
// them: every event id is on the topic exactly once. Each case runs twice,
// starting validating first and starting streaming; every run after the
// first switches mode, since a checkpoint does not depend on it.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stops []stop
	}{
		{"crash before any checkpoint", []stop{{chunk: 7, interval: time.Hour}}},
		{"crash after a checkpoint", []stop{{chunk: 6, interval: time.Nanosecond}}},
		{"cancelled", []stop{{chunk: 4, cancel: true, interval: time.Nanosecond}}},
		{"resumed run stops again", []stop{{chunk: 6, interval: time.Nanosecond}, {chunk: 2, interval: time.Nanosecond}, {chunk: 1, cancel: true, interval: time.Hour}}},
	} {
		for _, stream := range []bool{false, true} {
			name := tc.name + "/from validating first"
			if stream {
				name = tc.name + "/from streaming"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testResume(t, tc.stops, stream)
			})
		}
	}
}

func testResume(t *testing.T, stops []stop, stream bool) {
	m, tab, events := housingRows(t, 400)
	file := tempFile(t, "housing.csv")
	writeCSV(t, file, tab, gbk)
	addr := testenv.Kafka(t, partitions)
	cfg := Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}, BatchSize: 10, ChunkSize: 20, Stream: stream}
	sent := 0
	for i, s := range stops {
		ctx, cancel := context.WithCancel(context.Background())
		c := cfg
		c.CheckpointInterval = s.interval
		c.Stream = stream != (i%2 == 1)
		crash := errors.New("crash")
		c.hookOK = func(n int) error {
			if n < s.chunk {
				return nil
			}
			if s.cancel {
				cancel()
				return nil
			}
			return crash
		}
		rep, err := Run(ctx, c)
		cancel()
		if err == nil {
			t.Fatalf("run %d was not interrupted", i)
		}
		if s.cancel != errors.Is(err, context.Canceled) || !s.cancel && !errors.Is(err, crash) {
			t.Fatalf("run %d: %v", i, err)
		}
		if !rep.Resumable {
			t.Errorf("run %d stopped while sending, but the report says running again does not resume it", i)
		}
		if i > 0 && (!rep.Resumed || rep.AlreadySent < sent) {
			t.Errorf("run %d: resumed %v, %d already sent; want at least %d", i, rep.Resumed, rep.AlreadySent, sent)
		}
		sent += rep.Sent
	}
	cfg.Stream = stream != (len(stops)%2 == 1)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.AlreadySent+rep.Sent != len(events) || rep.AlreadySent < sent {
		t.Errorf("last run: resumed %v, %d already sent, %d sent; %d events, %d sent before", rep.Resumed, rep.AlreadySent, rep.Sent, len(events), sent)
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

	// Once complete, the file is not sent again.
	again, err := Run(context.Background(), cfg)
	if err != nil || again.Sent != 0 || again.AlreadySent != len(events) {
		t.Errorf("a run after completion: %v, sent %d, already sent %d", err, again.Sent, again.AlreadySent)
	}
}

// stop is how TestResume interrupts a run.
type stop struct {
	chunk    int  // the chunk after whose acknowledgement the run stops
	cancel   bool // by cancelling the context (else a crash)
	interval time.Duration
}

// TestChangedFile: a checkpoint of other content is not resumed from.
func TestChangedFile(t *testing.T) {
	m, tab, events := housingRows(t, 100)
	file := tempFile(t, "housing.csv")
	addr := testenv.Kafka(t, partitions)
	cfg := Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}}
	writeCSV(t, file, table{header: tab.header, rows: tab.rows[:10]}, gbk)
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	writeCSV(t, file, tab, gbk)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed || rep.Sent != len(events) {
		t.Errorf("resumed %v, sent %d; want a fresh import of %d", rep.Resumed, rep.Sent, len(events))
	}
}

// TestFileChangedDuringImport: a streamed import sends lines before it
// has read the whole file, so it must notice a file that changes under it:
// it stops with an error and does not mark its checkpoint complete, and
// the next run, seeing other content, imports the file afresh.
func TestFileChangedDuringImport(t *testing.T) {
	// More lines than the validation pass reads ahead of the sender
	// (about ten chunks of lines), so that it is still reading when the
	// first chunk has been acknowledged.
	const n = 12 * chunkRows
	lines := marriageLines(t, n+1)
	file := tempFile(t, "marriage.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines[:n], "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, partitions)
	cfg := Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}, ChunkSize: 1000, Stream: true}
	c := cfg
	c.hookOK = func(chunk int) error {
		if chunk > 0 {
			return nil
		}
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(lines[n] + "\n")
		return errors.Join(err, f.Close())
	}
	rep, err := Run(context.Background(), c)
	if !errors.Is(err, ErrFileChanged) {
		t.Fatalf("import of a file that changed: %v", err)
	}
	if rep.Sent == 0 || rep.Sent >= n {
		t.Errorf("sent %d before noticing the change, want some of %d", rep.Sent, n)
	}
	if rep.Resumable {
		t.Error("the report says running again resumes; it starts afresh")
	}
	ck, err := loadCheckpoint(cfg.File + ".pophub-import.json")
	if err != nil || ck == nil || ck.Complete {
		t.Fatalf("checkpoint after the change: %+v, %v", ck, err)
	}

	again, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.Resumed || again.Sent != n+1 {
		t.Errorf("next run: resumed %v, sent %d; want a fresh import of %d", again.Resumed, again.Sent, n+1)
	}
}

// TestEncodingChangedIsAnotherImport: a CSV file imported in one encoding
// and then in another is imported afresh, not taken as imported already:
// read in the other encoding, its lines are other events, or valid where
// they were rejected. (Column names in ASCII, as some systems export
// them, read the same in both.)
func TestEncodingChangedIsAnotherImport(t *testing.T) {
	m := mustMapping(t, schemas.PublicSecurity)
	ascii := map[string]string{}
	rename := func(c string) string {
		if c == "" {
			return ""
		}
		if _, ok := ascii[c]; !ok {
			ascii[c] = fmt.Sprintf("col%d", len(ascii))
		}
		return ascii[c]
	}
	m.Type.Column, m.Subject.Column, m.Time.Column = rename(m.Type.Column), rename(m.Subject.Column), rename(m.Time.Column)
	for i, k := range m.ID.Key {
		m.ID.Key[i] = rename(k)
	}
	for _, fields := range m.DataByType {
		for name, f := range fields {
			f.Column = rename(f.Column)
			fields[name] = f
		}
	}
	tab, events := render(t, m, population(t, 40, schemas.PublicSecurity))
	file := tempFile(t, "hukou.csv")
	writeCSV(t, file, tab, gbk)
	addr := testenv.Kafka(t, partitions)
	cfg := Config{Source: schemas.PublicSecurity, File: file, Mapping: m, Brokers: []string{addr}, Encoding: "utf-8"}
	wrong, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if wrong.Rejected == 0 {
		t.Fatal("no line rejected in the wrong encoding: the test needs names in Chinese")
	}
	cfg.Encoding = "auto"
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed || rep.Rejected != 0 || rep.Sent != len(events) {
		t.Errorf("run in the right encoding: resumed %v, %d rejected, %d sent; want a fresh import of %d", rep.Resumed, rep.Rejected, rep.Sent, len(events))
	}
}

// TestBrokenQuoting: a CSV line whose quoting encoding/csv cannot parse —
// in its first cell too, where the reader records no cell positions — is
// a malformed row with its line number, its text as it is in the rejects
// file (the reader returns only the cells before the error); the lines
// after it are read, keep their line numbers, and are sent. A quote never
// closed swallows the lines after it into one malformed row.
func TestBrokenQuoting(t *testing.T) {
	m, tab, events := housingRows(t, 50)
	m.Encoding = "utf-8"
	rows := len(tab.rows)
	long := "租赁登记备案," + strings.Repeat("长", maxRowBytes/3+1) + "\"x,1"
	for _, tc := range []struct {
		name string
		bad  string // the broken line(s), inserted as line 4
		skip int    // empty lines before it, which the reader skips
		last bool   // at the end of the file, with nothing after it
		// want: the reject's detail has this, {line} and {last} being the
		// first and last line of the broken row; the rejects file holds
		// this (the line, unsplit, in the first column of the file's).
		detail, held string
	}{
		{"bare quote in the first cell", "租赁\"登记备案,x\n", 0, false, `bare " in non-quoted-field`, "租赁\"登记备案,x"},
		{"bare quote in a later cell", "租赁登记备案,ab\"c,x\n", 0, false, `bare " in non-quoted-field`, "租赁登记备案,ab\"c,x"},
		{"text after a closing quote", "\"租赁登记备案\"x,y\r\n", 0, false, `extraneous or missing " in quoted-field`, "\"租赁登记备案\"x,y"},
		{"broken quote across lines", "租赁登记备案,\"a\nb\"c,x\n", 0, false, "lines {line}–{last} were read as one row", "租赁登记备案,\"a\nb\"c,x"},
		{"after empty lines", "\n\r\n租赁\"登记备案\n", 2, false, `bare " in non-quoted-field`, "租赁\"登记备案"},
		{"quote never closed", "租赁登记备案,\"ab\n\n,\n" + strings.Repeat("c,d\n", 3), 0, true, "lines {line}–{last} were read as one row", "租赁登记备案,\"ab\n\n,\n" + strings.Repeat("c,d\n", 2) + "c,d"},
		{"a line too long", long + "\n", 0, false, "line longer than 1 MiB", long[:4096] + fmt.Sprintf("… [cut: the row is %d bytes]", len(long))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w := csv.NewWriter(&b)
			w.Write(tab.header)
			w.WriteAll(tab.rows[:2])
			w.Flush()
			if !tc.last {
				b.WriteString(tc.bad)
			}
			w.WriteAll(tab.rows[2:])
			w.Write(tab.rows[0][:3]) // a short row: a reject whose line must stay right
			w.Flush()
			if tc.last {
				b.WriteString(tc.bad)
			}
			// Line 1 is the header; the bad text takes the lines from
			// line 4 (or after the short row) on.
			lines := strings.Count(tc.bad, "\n")
			badLine, shortLine := 4+tc.skip, 4+lines+rows-2
			if tc.last {
				badLine, shortLine = rows+3, rows+2
			}
			detail := strings.NewReplacer("{line}", fmt.Sprint(badLine), "{last}", fmt.Sprint(badLine+lines-tc.skip-1)).Replace(tc.detail)
			file := tempFile(t, "housing.csv")
			if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Read != rows+2 || rep.Valid != rows || rep.Sent != rows || len(rep.Rejects) != 2 {
				t.Fatalf("%d read, %d valid, %d sent, rejects %v; want %d, %d, %d and two rejects", rep.Read, rep.Valid, rep.Sent, rep.Rejects, rows+2, rows, rows)
			}
			if n := testenv.RecordCount(t, addr, schemas.Topic(schemas.Housing)); n != int64(len(events)) {
				t.Errorf("%d records on the topic, want %d", n, len(events))
			}
			rejects := map[int]Reject{}
			for _, r := range rep.Rejects {
				rejects[r.Line] = r
			}
			if r, ok := rejects[badLine]; !ok || r.Reason != ReasonMalformedRow || !strings.Contains(r.Detail, detail) {
				t.Errorf("rejects %v; want line %d malformed, saying %q", rep.Rejects, badLine, detail)
			}
			if r, ok := rejects[shortLine]; !ok || r.Reason != ReasonMalformedRow {
				t.Errorf("rejects %v; want the short row at line %d", rep.Rejects, shortLine)
			}
			rj, err := os.ReadFile(rep.RejectsFile)
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
				if r[0] == fmt.Sprint(badLine) {
					if r[5] != tc.held {
						t.Errorf("the rejects file holds %.80q for line %d, want %.80q", r[5], badLine, tc.held)
					}
					return
				}
			}
			t.Errorf("the rejects file has no line %d", badLine)
		})
	}
}

// TestRecordText: the text kept of the record being read is the text
// from its start, however the reads and records fall; a record is read
// no further than maxRowBytes, and the line ends before the record are
// counted.
func TestRecordText(t *testing.T) {
	text := strings.Repeat("012345678\n", 20_000) // 200 KB
	long := strings.Repeat("y", maxRowBytes+10)
	k := &recordText{r: strings.NewReader(text + long)}
	buf := make([]byte, 4096)
	var read int64
	readTo := func(off int64) error {
		for read < off {
			n, err := k.Read(buf)
			read += int64(n)
			if err != nil {
				return err
			}
		}
		return nil
	}
	for off := int64(0); off+777 < int64(len(text)); off += 777 {
		k.forget(off)
		if err := readTo(off + 777); err != nil {
			t.Fatal(err)
		}
		if got := k.text(off, off+777); string(got) != text[off:off+777] {
			t.Fatalf("text at %d: %.20q…, want %.20q…", off, got, text[off:])
		}
		if want := strings.Count(text[:off], "\n"); k.lines != want {
			t.Fatalf("at %d: %d line ends before the record, want %d", off, k.lines, want)
		}
	}
	start := int64(len(text))
	k.forget(start)
	err := readTo(start + int64(len(long)))
	if !errors.Is(err, errRowTooLong) || !k.tooLong || read != start+maxRowBytes {
		t.Errorf("reading a record longer than %d: read %d of it, %v (too long: %v)", maxRowBytes, read-start, err, k.tooLong)
	}
	if got := k.text(start, read); string(got) != long[:read-start] {
		t.Errorf("the long record's text as read is not kept")
	}
}

// TestInvalidGBKBytes: bytes not valid in a GBK file's encoding make their
// line a malformed_row with its line number and column, not a name with
// U+FFFD in it, as the doc promises; the other lines are sent, but for
// one with U+FFFD in a name, validly encoded (GB18030 0x84 0x31 0xA4 0x37):
// a name that holds it lost a character, and is rejected as invalid_data.
func TestInvalidGBKBytes(t *testing.T) {
	m := mustMapping(t, schemas.PublicSecurity)
	tab, events := render(t, m, population(t, 20, schemas.PublicSecurity))
	nameCol := colIndex(t, tab, "姓名")
	var named []int
	for i, r := range tab.rows {
		if r[nameCol] != "" {
			named = append(named, i)
		}
	}
	if len(named) < 2 {
		t.Fatal("the population has fewer than two names")
	}
	bad, genuine := named[0], named[1]
	tab.rows[bad][nameCol] += "\u0001MARK"
	tab.rows[genuine][nameCol] += "\u0002MARK"
	const notGBK = "column 姓名 holds bytes that are not valid GBK"
	const userDefined = "column 姓名 holds a character of GBK's user-defined area (造字"
	for _, tc := range []struct {
		name    string
		invalid []byte
		detail  string
	}{
		{"a lead byte cut off", []byte{0x81, 0x20}, notGBK},
		{"0xFF", []byte{0xFF}, notGBK},
		{"a broken four-byte sequence", []byte{0x81, 0x30, 0x20, 0x30}, notGBK},
		{"a four-byte sequence beyond Unicode", []byte{0xFE, 0x39, 0xFE, 0x39}, notGBK},
		{"a lead byte at the end of the cell", []byte{0xB0}, notGBK},
		// A rare character of a name, made in a department's own font.
		{"user-defined area AAA1-AFFE", []byte{0xAA, 0xA1}, userDefined},
		{"user-defined area F8A1-FEFE", []byte{0xFE, 0xFE}, userDefined},
		{"user-defined area A140-A7A0", []byte{0xA1, 0x40}, userDefined},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, "hukou.csv")
			writeCSV(t, file, tab, gbk)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte("\x01MARK"), tc.invalid, 1)
			b = bytes.Replace(b, []byte("\x02MARK"), gb18030FFFD, 1)
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, Brokers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rejected != 2 || rep.Rejects[0].Line != bad+2 || rep.Rejects[0].Reason != ReasonMalformedRow ||
				!strings.Contains(rep.Rejects[0].Detail, tc.detail) {
				t.Fatalf("rejects %v; want line %d malformed for its name's bytes: %q", rep.Rejects, bad+2, tc.detail)
			}
			if r := rep.Rejects[1]; r.Line != genuine+2 || r.Reason != schemas.ReasonInvalidData || r.Field != "data.name" || !strings.Contains(r.Detail, "holds U+FFFD") {
				t.Errorf("reject %s; want line %d invalid_data on data.name for its U+FFFD", r, genuine+2)
			}
			if rep.Sent != len(events)-2 {
				t.Errorf("%d sent, want %d", rep.Sent, len(events)-2)
			}
			for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity))) {
				if strings.Contains(string(ev.Data), "\ufffd") {
					t.Errorf("sent %s holding U+FFFD", ev.Type)
				}
			}
			rj, err := os.ReadFile(rep.RejectsFile)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(rj) || !strings.Contains(string(rj), "\ufffd") {
				t.Errorf("the rejects file is not UTF-8 with U+FFFD where the bytes were:\n%s", rj)
			}
		})
	}
}

// TestStrictGB18030: the strict decoder writes what simplifiedchinese's
// does, except invalidGBK where that writes U+FFFD for invalid bytes; a
// validly encoded U+FFFD stays. Random bytes, fed a byte at a time and
// whole, cover the decoder's every branch and the boundaries of its
// input.
func TestStrictGB18030(t *testing.T) {
	lax := func(b []byte) string {
		out, err := io.ReadAll(transform.NewReader(bytes.NewReader(b), simplifiedchinese.GB18030.NewDecoder()))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	strict := func(b []byte, oneByte bool) (string, bool) {
		var r io.Reader = bytes.NewReader(b)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		d := &strictGB18030{dec: simplifiedchinese.GB18030.NewDecoder()}
		out, err := io.ReadAll(transform.NewReader(r, d))
		if err != nil {
			t.Fatal(err)
		}
		return string(out), d.invalid
	}
	enc := func(s string) []byte {
		b, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(enc("\ufffd"), gb18030FFFD) {
		t.Fatalf("GB18030 encodes U+FFFD as % x, not % x", enc("\ufffd"), gb18030FFFD)
	}
	mark, userMark := string(invalidGBK), string(userDefinedGBK)
	for _, tc := range []struct {
		name    string
		in      []byte
		want    string
		invalid bool
	}{
		{"valid", enc("张三,€,😀,\ufffd,abc"), "张三,€,😀,\ufffd,abc", false},
		{"a lead byte cut off", append(enc("张"), 0x81, ','), "张" + mark + ",", true},
		{"0xFF", []byte{'a', 0xFF, 'b'}, "a" + mark + "b", true},
		{"a lead byte at the end", append(enc("李"), 0xB0), "李" + mark, true},
		{"four bytes beyond Unicode", []byte{0xFE, 0x39, 0xFE, 0x39}, mark + "9" + mark + "9", true},
		{"user-defined areas", append(enc("王"), 0xAA, 0xA1, 0xFE, 0xFE, 0xA1, 0x40, 0xA1, 0x7F), "王" + userMark + userMark + userMark + mark + "\x7f", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				got, invalid := strict(tc.in, oneByte)
				if got != tc.want || invalid != tc.invalid {
					t.Errorf("a byte at a time %v: %q (invalid %v), want %q (%v)", oneByte, got, invalid, tc.want, tc.invalid)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := []byte{0x20, 0x30, 0x39, 0x40, 0x7E, 0x7F, 0x80, 0x81, 0x84, 0xA4, 0x31, 0x37, 0xB0, 0xFE, 0xFF, ','}
	for i := range 2000 {
		in := make([]byte, rng.IntN(40))
		for j := range in {
			if rng.IntN(2) == 0 {
				in[j] = pick[rng.IntN(len(pick))]
			} else {
				in[j] = byte(rng.IntN(256))
			}
		}
		if i%7 == 0 {
			in = append(in, gb18030FFFD...)
		}
		want := lax(in)
		for _, oneByte := range []bool{false, true} {
			got, _ := strict(in, oneByte)
			if strings.NewReplacer(mark, "\ufffd", userMark, "\ufffd").Replace(got) != want {
				t.Fatalf("% x: %q, the lax decoder %q", in, got, want)
			}
			if n := strings.Count(got, "\ufffd"); n > bytes.Count(in, gb18030FFFD) {
				t.Fatalf("% x: %q holds U+FFFD for invalid bytes", in, got)
			}
		}
	}
}

// TestOtherCluster: a checkpoint is of one Kafka cluster's topic. The
// same file imported into another cluster — a trial against pophub dev,
// then production — is imported there afresh, whether the trial finished
// or was interrupted, and whether the clusters' ids differ or, as every
// kfake broker's do, not; and so is a checkpoint that names no cluster.
// Each cluster ends with every event.
func TestOtherCluster(t *testing.T) {
	lines := marriageLines(t, 300)
	crash := errors.New("crash")
	for _, tc := range []struct {
		name            string
		trialID, prodID string // kfake cluster ids ("": kfake's own)
		prefill         int    // records already on production's topic
		interrupted     bool   // the trial stops after two checkpointed chunks
		forgetCluster   bool   // the checkpoint names no cluster (an earlier version's)
		sameCluster     bool   // "production" is the trial's cluster
		want            string // Report.SetAside
	}{
		{"finished trial, clusters with one id", "", "", 0, false, false, false, "fewer records than the checkpoint found counted"},
		{"interrupted trial, clusters with one id", "", "", 0, true, false, false, "fewer records than the checkpoint found counted"},
		{"finished trial, clusters with their own ids", "trial", "production", 5 * len(lines), false, false, false, "for another Kafka cluster"},
		{"interrupted trial, clusters with their own ids", "trial", "production", 5 * len(lines), true, false, false, "for another Kafka cluster"},
		{"checkpoint without a cluster", "", "", 0, false, true, true, "does not say which Kafka cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tempFile(t, "marriage.jsonl")
			if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			cluster := func(id string) string {
				if id == "" {
					return testenv.Kafka(t, partitions)
				}
				return testenv.Kafka(t, partitions, kfake.ClusterID(id))
			}
			trial := cluster(tc.trialID)
			prod := trial
			if !tc.sameCluster {
				prod = cluster(tc.prodID)
			}
			if tc.prefill > 0 {
				other := tempFile(t, "other.jsonl")
				if err := os.WriteFile(other, []byte(strings.Join(marriageLines(t, tc.prefill), "\n")), 0o600); err != nil {
					t.Fatal(err)
				}
				if _, err := Run(context.Background(), Config{Source: schemas.Marriage, File: other, Brokers: []string{prod}}); err != nil {
					t.Fatal(err)
				}
			}
			before := testenv.RecordCount(t, prod, schemas.Topic(schemas.Marriage))
			cfg := Config{Source: schemas.Marriage, File: file, Brokers: []string{trial}, ChunkSize: 50, CheckpointInterval: time.Nanosecond}
			c := cfg
			if tc.interrupted {
				c.hookOK = func(n int) error {
					if n < 2 {
						return nil
					}
					return crash
				}
			}
			if _, err := Run(context.Background(), c); tc.interrupted != errors.Is(err, crash) {
				t.Fatalf("trial: %v", err)
			}
			if tc.forgetCluster {
				ck, err := loadCheckpoint(file + ".pophub-import.json")
				if err != nil || ck == nil || ck.Cluster == "" {
					t.Fatalf("trial checkpoint %+v (%v) names no cluster", ck, err)
				}
				ck.Cluster = ""
				if err := ck.save(file + ".pophub-import.json"); err != nil {
					t.Fatal(err)
				}
			}
			cfg.Brokers = []string{prod}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Resumed || rep.Sent != len(lines) || !strings.Contains(rep.SetAside, tc.want) || !strings.Contains(rep.Summary(), "afresh") {
				t.Errorf("production: resumed %v, %d sent, set aside %q (%s); want a fresh import of %d, set aside saying %q",
					rep.Resumed, rep.Sent, rep.SetAside, rep.Summary(), len(lines), tc.want)
			}
			byID := map[string]bool{}
			for _, ev := range decodeAll(t, testenv.Records(t, prod, schemas.Topic(schemas.Marriage))[before:]) {
				byID[ev.ID] = true
			}
			if len(byID) != len(lines) {
				t.Errorf("production holds %d of the file's %d events", len(byID), len(lines))
			}
			// Production's own checkpoint is resumed there: nothing again.
			again, err := Run(context.Background(), cfg)
			if err != nil || !again.Resumed || again.Sent != 0 || again.SetAside != "" {
				t.Errorf("production again: %v, resumed %v, %d sent, set aside %q", err, again.Resumed, again.Sent, again.SetAside)
			}
		})
	}
}

// TestSASL: an import into brokers that require a SASL login logs in on
// every connection it makes — sending, reading the topic's offsets, and,
// on a resume, reading what the interrupted run sent; without credentials,
// or with a wrong password, it says what is likely wrong rather than only
// EOF.
func TestSASL(t *testing.T) {
	addr := testenv.Kafka(t, partitions, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "housing", "pw"))
	lines := marriageLines(t, 200)
	file := tempFile(t, "marriage.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Source: schemas.Marriage, File: file, Brokers: []string{addr}}

	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does it require SASL credentials?") {
		t.Errorf("without credentials: %v; want an error asking about SASL", err)
	}

	cfg.SASL = access.SCRAMClient{User: "housing", Password: "guess"}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "the Kafka credentials refused: are they right?") {
		t.Errorf("with a wrong password: %v; want an error asking whether the credentials are right", err)
	}

	cfg.SASL = access.SCRAMClient{User: "housing", Password: "pw"}
	c := cfg
	c.ChunkSize, c.CheckpointInterval = 50, time.Hour // crash before any checkpoint: the resume scans the topic
	crash := errors.New("crash")
	c.hookOK = func(n int) error {
		if n < 1 {
			return nil
		}
		return crash
	}
	if _, err := Run(context.Background(), c); !errors.Is(err, crash) {
		t.Fatalf("interrupted run: %v", err)
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.AlreadySent != 100 || rep.Sent != len(lines)-100 {
		t.Errorf("resumed %v, %d already sent, %d sent; want 100 and %d", rep.Resumed, rep.AlreadySent, rep.Sent, len(lines)-100)
	}
	// testenv's readers do not log in: read the topic as the import does.
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: cfg.kafkaTransport()}
	topic := schemas.Topic(schemas.Marriage)
	end, err := endOffsets(context.Background(), client, topic)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := scanIDs(context.Background(), client, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	for _, off := range end {
		n += off
	}
	if n != int64(len(lines)) || len(ids) != len(lines) {
		t.Errorf("%d records, %d events on the topic; want %d of each", n, len(ids), len(lines))
	}
}

// TestDryRun: validation only; nothing sent, no checkpoint, yet the
// rejects file is written.
func TestDryRun(t *testing.T) {
	m, tab, _ := housingRows(t, 50)
	tab.rows = append(tab.rows, tab.rows[0][:2])
	file := tempFile(t, "housing.csv")
	writeCSV(t, file, tab, gbk)
	addr := testenv.Kafka(t, partitions)
	rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 1 || len(rep.Rejects) != 1 || rep.Sent != 0 || rep.Valid != len(tab.rows)-1 {
		t.Errorf("report %+v", rep)
	}
	if _, err := os.Stat(file + ".pophub-import.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run wrote a checkpoint: %v", err)
	}
	if _, err := os.Stat(rep.RejectsFile); err != nil {
		t.Errorf("no rejects file: %v", err)
	}
	if n := len(testenv.Records(t, addr, schemas.Topic(schemas.Housing))); n != 0 {
		t.Errorf("a dry run sent %d records", n)
	}
}

func TestMappingErrors(t *testing.T) {
	const base = "source: housing\nsubject: 身份证号\ntime: 时间\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", base + "type: housing.rental_ended\ndata: {lease_id: 编号, end: 日期}\nsubjet: x\n", "field subjet not found"},
		{"type of another source", base + "type: tax.business_registered\n", "belongs to source tax"},
		{"type not in the catalogue", base + "type: housing.demolished\n", "not in the catalogue"},
		{"type column without map", base + "type: {column: 类型}\n", "needs a map"},
		{"field not in the data", base + "type: housing.rental_ended\ndata: {lease_id: 编号, tenant: 租户}\n", "data.tenant: not a field"},
		{"by type for a type not yielded", base + "type: housing.rental_ended\ndata_by_type: {housing.rental_registered: {lease_id: x}}\n", "not a type this mapping yields"},
		{"bad kind", base + "type: housing.rental_ended\ndata: {end: {column: 日期, kind: datetime}}\n", `kind "datetime"`},
		{"bad code table", base + "type: housing.rental_ended\ndata: {end: {column: 日期, codes: colours}}\n", `codes "colours"`},
		{"bad time zone", "source: housing\nsubject: 身份证号\ntime: {column: 时间, timezone: Mars/Olympus}\ntype: housing.rental_ended\n", "Mars/Olympus"},
		{"no subject", "source: housing\ntime: 时间\ntype: housing.rental_ended\n", "subject: the column"},
		{"bad encoding", base + "type: housing.rental_ended\nencoding: latin1\n", "encoding"},
		{"java time layout", "source: housing\nsubject: 身份证号\ntime: {column: 时间, layout: \"yyyy-MM-dd HH:mm:ss\"}\ntype: housing.rental_ended\n",
			`time: layout "yyyy-MM-dd HH:mm:ss" is not a Go time layout: write it as "2006-01-02 15:04:05"`},
		{"excel date layout", base + "type: housing.rental_ended\ndata: {lease_id: 编号, end: {column: 日期, kind: date, layout: YYYYMMDD}}\n",
			`data.end: layout "YYYYMMDD" is not a Go time layout: write it as "20060102"`},
		{"version layout", base + "type: housing.rental_ended\nid: {version: {column: 修改时间, layout: \"yyyy/MM/dd HH:mm\"}}\n",
			`id.version: layout "yyyy/MM/dd HH:mm" is not a Go time layout: write it as "2006/01/02 15:04"`},
		{"no time in the layout", base + "type: housing.rental_ended\ndata: {lease_id: 编号, end: {column: 日期, kind: date, layout: 日期}}\n",
			`data.end: layout "日期" is not a Go time layout`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	// Go layouts, the shipped ones among them, are accepted.
	for _, l := range []string{"2006-01-02 15:04:05", "20060102", "2006年1月2日", "Jan _2 2006 3:04PM", "2006"} {
		y := "source: housing\nsubject: 身份证号\ntime: {column: 时间, layout: \"" + l + "\"}\ntype: housing.rental_ended\n"
		if _, err := ParseMapping([]byte(y)); err != nil {
			t.Errorf("layout %q: %v", l, err)
		}
	}

	// Columns are checked against the file's header.
	m, err := ParseMapping([]byte(base + "type: housing.rental_ended\ndata: {lease_id: 编号, end: {column: 日期, kind: date}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newPlan(m, []string{"身份证号", "时间", "编号"}); err == nil || !strings.Contains(err.Error(), `data.end: column "日期" is not in the header`) {
		t.Errorf("missing column: %v", err)
	}
	file := tempFile(t, "x.csv")
	if err := os.WriteFile(file, []byte("身份证号,时间,编号\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true}); err == nil || !strings.Contains(err.Error(), "日期") {
		t.Errorf("Run with a missing column: %v", err)
	}
}

func TestDetectEncoding(t *testing.T) {
	gbkText, err := simplifiedchinese.GBK.NewEncoder().String("姓名,民族\n张三,汉族\n")
	if err != nil {
		t.Fatal(err)
	}
	utf := "姓名,民族\n张三,汉族\n"
	// The sample of a longer file ends wherever 1 MiB does: one, two or
	// three bytes into a character, or right after one.
	cut := "姓名,公民身份号码,业务类型\n张三,x,户口登记\n李四四,y,户口迁移"
	wide := "姓名\n𠮷" // a four-byte character
	for _, tc := range []struct {
		name   string
		sample string
		atEOF  bool
		want   string
	}{
		{"ascii", "a,b\n1,2\n", true, encodingUTF8},
		{"utf-8", utf, true, encodingUTF8},
		{"utf-8 cut inside a character", utf[:len(utf)-4], false, encodingUTF8},
		{"utf-8 cut after a character", cut, false, encodingUTF8},
		{"utf-8 cut one byte into a character", cut[:len(cut)-2], false, encodingUTF8},
		{"utf-8 cut two bytes into a character", cut[:len(cut)-1], false, encodingUTF8},
		{"utf-8 cut one byte into a four-byte character", wide[:len(wide)-3], false, encodingUTF8},
		{"utf-8 cut three bytes into a four-byte character", wide[:len(wide)-1], false, encodingUTF8},
		// Its last line is not valid UTF-8, but its two others are UTF-8
		// Chinese: most lines win.
		{"utf-8 cut inside a character at the end of the file", cut[:len(cut)-1], true, encodingUTF8},
		{"utf-8 with a gbk line", utf + gbkText[strings.IndexByte(gbkText, '\n')+1:], true, encodingUTF8},
		{"gbk with a utf-8 line", gbkText + gbkText[strings.IndexByte(gbkText, '\n')+1:] + utf[strings.IndexByte(utf, '\n')+1:], true, encodingGBK},
		{"bom", bom + gbkText, true, encodingUTF8},
		{"gbk", gbkText, true, encodingGBK},
		{"gbk cut inside a character", gbkText[:len(gbkText)-2], false, encodingGBK},
	} {
		if got := detectEncoding([]byte(tc.sample), tc.atEOF); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestProgress(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		tty   bool
		final bool
		want  []string
	}{
		{"plain", false, false, []string{"sending: 250 lines (25%), 25 lines/s, ETA 30s\n"}},
		{"terminal", true, false, []string{"\rsending", "███████░", " 25%", "250 lines", "25/s", "ETA 30s"}},
		{"terminal final", true, true, []string{"done in 10s", "\n"}},
	} {
		p := &progress{tty: tc.tty, phase: "sending", total: 1000, start: at, now: func() time.Time { return at.Add(10 * time.Second) }}
		p.set(250, 250)
		got := p.render(tc.final)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
	}
}

// BenchmarkImport reports the import's rate, CSV file to acknowledged
// events, validating first (events/s) and streaming (stream_events/s),
// next to kafka-go's raw rate for the same records, encoded beforehand,
// with the same writer settings: all of them in one WriteMessages,
// kafka-go's fastest way with records in memory. The three are measured
// in turns in the same run on the same broker.
func BenchmarkImport(b *testing.B) {
	m, tab, events := housingRows(b, 30000)
	b.ReportMetric(float64(len(events)), "events/op")
	file := tempFile(b, "housing.csv")
	writeCSV(b, file, tab, gbk)
	addr := testenv.Kafka(b, partitions)
	cfg := Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}}
	cfg.setDefaults()
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		v, err := schemas.Encode(e)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: schemas.Topic(e.Source), Key: []byte(e.Subject), Value: v}
	}
	raw := newWriter(&cfg)
	defer raw.Close()
	ctx := context.Background()
	importOnce := func(stream bool) time.Duration {
		os.Remove(cfg.CheckpointFile)
		c := cfg
		c.Stream = stream
		t0 := time.Now()
		rep, err := Run(ctx, c)
		if err != nil || rep.Sent != len(events) {
			b.Fatalf("import (stream %v): %v, %+v", stream, err, rep)
		}
		return time.Since(t0)
	}
	var rawTime, firstTime, streamTime time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if err := raw.WriteMessages(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(t0)
		firstTime += importOnce(false)
		streamTime += importOnce(true)
		n += len(events)
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	b.ReportMetric(rate(firstTime), "events/s")
	b.ReportMetric(rate(streamTime), "stream_events/s")
	b.ReportMetric(rate(rawTime), "raw_events/s")
	b.ReportMetric(rate(firstTime)/rate(rawTime), "ratio")
	b.ReportMetric(rate(streamTime)/rate(rawTime), "stream_ratio")
}
