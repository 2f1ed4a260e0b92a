package importer

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/pophub/pophub/adapters/synth"
	"github.com/pophub/pophub/schemas"
)

const partitions = 3

// population returns synthetic events of one source, each with its data
// as JSON (synth sets only Payload).
func population(t testing.TB, persons int, source schemas.Source) []schemas.Event {
	t.Helper()
	var out []schemas.Event
	err := synth.Generate(context.Background(), synth.Config{Persons: persons, Seed: 11}, func(ev schemas.Event) error {
		if ev.Source != source {
			return nil
		}
		v, err := schemas.Encode(ev)
		if err != nil {
			return err
		}
		dec, err := schemas.Decode(schemas.Input{Value: v})
		if err != nil {
			return err
		}
		out = append(out, dec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// table is a department's file: a header and rows of cells.
type table struct {
	header []string
	rows   [][]string
}

// render writes events as the rows of a department's table that m maps
// back to the same events: the inverse of the mapping. Events of types m
// does not yield are left out. Key columns that no data field fills get
// the event's own id, the version 1, or the event's time when the version
// is a time.
func render(t testing.TB, m *Mapping, events []schemas.Event) (table, []schemas.Event) {
	t.Helper()
	cols := []string{}
	add := func(c string) {
		if c != "" && !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	add(m.Type.Column)
	add(m.Subject.Column)
	add(m.Time.Column)
	for _, k := range m.ID.Key {
		add(k)
	}
	add(m.ID.Version.Column)
	types := m.types()
	for _, typ := range types {
		fs := m.fieldsOf(typ)
		names := make([]string, 0, len(fs))
		for n := range fs {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			add(fs[n].Column)
		}
	}
	loc, err := location(m.Time.Timezone)
	if err != nil {
		t.Fatal(err)
	}
	var tab table
	tab.header = cols
	var kept []schemas.Event
	for _, ev := range events {
		if !slices.Contains(types, ev.Type) {
			continue
		}
		cells := map[string]string{}
		if m.Type.Column != "" {
			cells[m.Type.Column] = inverse(m.Type.Map, ev.Type)
		}
		cells[m.Subject.Column] = string(ev.Subject)
		cells[m.Time.Column] = ev.Time.In(loc).Format(layoutsOr(m.Time.Layout, timeLayouts)[0])
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatal(err)
		}
		for name, f := range m.fieldsOf(ev.Type) {
			v, ok := data[name]
			if !ok || f.Column == "" {
				continue
			}
			cells[f.Column] = renderValue(t, f, v)
		}
		for i, k := range m.ID.Key {
			if cells[k] == "" {
				cells[k] = ev.ID + "-" + strconv.Itoa(i)
			}
		}
		if c := m.ID.Version.Column; c != "" {
			cells[c] = "1"
			if l := versionLayouts(m.ID.Version); l != nil {
				cells[c] = ev.Time.In(loc).Format(l[0]) // last modified when filed
			}
		}
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = cells[c]
		}
		tab.rows = append(tab.rows, row)
		kept = append(kept, ev)
	}
	return tab, kept
}

func inverse[V comparable](m map[string]V, v V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if m[k] == v {
			return k
		}
	}
	return ""
}

// renderValue writes a data value as the department's cell.
func renderValue(t testing.TB, f Field, v any) string {
	t.Helper()
	one := func(s string) string {
		switch {
		case f.Map != nil:
			return inverse(f.Map, s)
		case f.Codes != "":
			return codeTables[f.Codes].names[s]
		}
		return s
	}
	switch v := v.(type) {
	case []any:
		sep := f.Split
		if sep == "" {
			sep = "、"
		}
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = one(e.(string))
		}
		return strings.Join(parts, sep)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		switch f.Kind {
		case KindDate:
			d, err := time.Parse(time.DateOnly, v)
			if err != nil {
				t.Fatal(err)
			}
			return d.Format(layoutsOr(f.Layout, dateLayouts)[0])
		case KindMonth:
			d, err := time.Parse("2006-01", v)
			if err != nil {
				t.Fatal(err)
			}
			return d.Format(layoutsOr(f.Layout, monthLayouts)[0])
		}
		return one(v)
	}
	t.Fatalf("data value %T not rendered", v)
	return ""
}

// File encodings the tests write.
const (
	utf8Plain = "utf-8"
	utf8BOM   = "utf-8 with BOM"
	gbk       = "gbk"
)

func writeCSV(t testing.TB, path string, tab table, enc string) {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(tab.header)
	w.WriteAll(tab.rows)
	b := buf.Bytes()
	switch enc {
	case utf8BOM:
		b = append([]byte(bom), b...)
	case gbk:
		var err error
		if b, err = simplifiedchinese.GBK.NewEncoder().Bytes(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeXLSX writes a workbook whose first sheet has a title row above the
// header and a blank row in the middle, as exports from office software
// often do.
func writeXLSX(t testing.TB, path string, tab table) {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	sheet := f.GetSheetName(0)
	set := func(r int, cells []string) { setSheetRow(t, f, sheet, r, cells) }
	set(1, []string{"导出数据（内部资料）"})
	set(2, tab.header)
	r := 3
	for i, row := range tab.rows {
		if i == len(tab.rows)/2 {
			r++ // a blank row
		}
		set(r, row)
		r++
	}
	if err := f.SaveAs(path); err != nil {
		t.Fatal(err)
	}
}

// decodeAll decodes records as the hub does.
func decodeAll(t testing.TB, recs []*kgo.Record) []schemas.Event {
	t.Helper()
	out := make([]schemas.Event, len(recs))
	for i, r := range recs {
		ev, err := schemas.Decode(schemas.Input{Topic: r.Topic, Key: r.Key, Value: r.Value})
		if err != nil {
			t.Fatalf("record %d does not decode: %v", i, err)
		}
		out[i] = ev
	}
	return out
}

// fingerprint identifies an event's content (not its id): type, subject,
// time to the second, data.
func fingerprint(t testing.TB, ev schemas.Event, timeLayout string) string {
	t.Helper()
	var data any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	d, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := location("")
	return strings.Join([]string{string(ev.Type), string(ev.Subject), ev.Time.In(sh).Format(timeLayout), string(d)}, "|")
}

// marriageLines is n valid, distinct JSONL lines: a small population's
// marriage events repeated under new event ids.
func marriageLines(t testing.TB, n int) []string {
	t.Helper()
	base := population(t, 200, schemas.Marriage)
	events := make([]schemas.Event, n)
	for i := range events {
		events[i] = base[i%len(base)]
		events[i].ID = fmt.Sprintf("%s-%d", events[i].ID, i)
	}
	return encodeLines(t, events)
}

// encodeLines encodes events as JSONL lines, one CloudEvent each.
func encodeLines(t testing.TB, events []schemas.Event) []string {
	t.Helper()
	lines := make([]string, len(events))
	for i, ev := range events {
		v, err := schemas.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = string(v)
	}
	return lines
}

// legacy15 is the 15-digit form of an 18-digit ID born in the 1900s.
func legacy15(id string) (string, bool) {
	if len(id) != 18 || id[6:8] != "19" {
		return "", false
	}
	return id[:6] + id[8:17], true
}

func mustMapping(t testing.TB, src schemas.Source) *Mapping {
	t.Helper()
	m, err := ExampleMapping(src)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tempFile(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(t.TempDir(), name)
}

// setSheetRow writes cells as text into row number row of a sheet.
func setSheetRow(t testing.TB, f *excelize.File, sheet string, row int, cells []string) {
	t.Helper()
	vals := make([]any, len(cells))
	for i, c := range cells {
		vals[i] = c
	}
	ref, err := excelize.CoordinatesToCellName(1, row)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SetSheetRow(sheet, ref, &vals); err != nil {
		t.Fatal(err)
	}
}

// rewritePart rewrites one part of a saved workbook (a sheet's XML), to
// write cells as Excel writes them and excelize does not.
func rewritePart(t testing.TB, file, part string, edit func(string) string) {
	t.Helper()
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == part {
			b = []byte(edit(string(b)))
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hukouRegistrations returns the public security mapping, its table and
// n hukou registration rows of distinct persons with names.
func hukouRegistrations(t testing.TB, n int) (*Mapping, table, [][]string) {
	t.Helper()
	m := mustMapping(t, schemas.PublicSecurity)
	tab, _ := render(t, m, population(t, 200, schemas.PublicSecurity))
	seen := map[string]bool{}
	var out [][]string
	for _, r := range tab.rows {
		id := r[colIndex(t, tab, "公民身份号码")]
		if r[colIndex(t, tab, "业务类型")] == "户口登记" && r[colIndex(t, tab, "姓名")] != "" && !seen[id] {
			seen[id] = true
			out = append(out, append([]string(nil), r...))
			if len(out) == n {
				return m, tab, out
			}
		}
	}
	t.Fatalf("fewer than %d hukou registrations", n)
	return nil, table{}, nil
}

// validateFile runs the validation pass over cfg.File.
func validateFile(cfg *Config, rep *Report, emit func(*mapped) error) error {
	ctx := context.Background()
	src, p, err := openInput(ctx, cfg, rep, "validating")
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = validate(ctx, cfg, rep, src, p, "validating", emit)
	return err
}
