package importer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestGarbledNames: Excel and WPS save "CSV (逗号分隔)" in GBK and write
// ? for a character GBK lacks, the 生僻字 of names (𠮷野 as ?野); a file
// converted lossily holds U+FFFD. A clerk relies on such a name being
// rejected on the name's column, saying how to save the file, never sent
// as the person's name.
func TestGarbledNames(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 3)
	nc := colIndex(t, tab, "姓名")
	for _, tc := range []struct {
		name, enc string
		names     []string
	}{
		{"excel csv in gbk", gbk, []string{"?野", "刘?", "阿依古丽?买买提"}},
		{"utf-8 with replacement characters", utf8BOM, []string{"\ufffd野", "刘\ufffd", "张\ufffd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := table{header: tab.header}
			for i, r := range rows {
				r = append([]string(nil), r...)
				r[nc] = tc.names[i]
				in.rows = append(in.rows, r)
			}
			file := tempFile(t, "hukou.csv")
			writeCSV(t, file, in, tc.enc)
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, Brokers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity))) {
				var d map[string]any
				json.Unmarshal(ev.Data, &d)
				t.Errorf("sent %s with the garbled name %q", ev.Type, d["name"])
			}
			if rep.Rejected != len(rows) {
				t.Fatalf("%s; want every line rejected on data.name (column 姓名)", rep.Summary())
			}
			for _, r := range rep.Rejects {
				if r.Field != "data.name" || r.Column != "姓名" || !strings.Contains(r.Detail, "save the file as UTF-8") {
					t.Errorf("%s; want a reject on data.name (column 姓名) saying to save the file as UTF-8", r)
				}
			}
		})
	}
}

// TestNameSeparatorsSentAsTheMiddleDot: clerks type the dot of a
// two-part name (Uyghur, Kazakh, Hui…) with whatever their input method
// or font gives, ・ • ．or a full stop, where the register and the ID
// card print the middle dot U+00B7 (GBK A1A4). The hub refuses the
// look-alikes, so the import sends the name with · and counts each
// replacement in its report; a look-alike that joins no two parts is
// rejected on the name's column, saying to use U+00B7.
func TestNameSeparatorsSentAsTheMiddleDot(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 5)
	nc := colIndex(t, tab, "姓名")
	typed := []string{"阿依古丽・买买提", "买买提•艾力．阿不都热合曼", "阿依古丽.买买提", "张三", "・买买提"}
	want := map[string]bool{"阿依古丽·买买提": true, "买买提·艾力·阿不都热合曼": true, "张三": true}
	in := table{header: tab.header}
	for i, r := range rows {
		r = append([]string(nil), r...)
		r[nc] = typed[i]
		in.rows = append(in.rows, r)
	}
	for _, format := range []string{"csv", "xlsx"} {
		t.Run(format, func(t *testing.T) {
			file := tempFile(t, "hukou."+format)
			mm := *m
			if format == "xlsx" {
				mm.HeaderRow = 2 // below writeXLSX's title
				writeXLSX(t, file, in)
			} else {
				writeCSV(t, file, in, utf8Plain)
			}
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: &mm, Brokers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			sent := 0
			for _, ev := range decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity))) {
				name := ev.Payload.(*schemas.HukouRegisteredData).Name
				if !want[name] {
					t.Errorf("sent the name %q", name)
				}
				sent++
			}
			if sent != 4 || rep.Separators != 4 || !strings.Contains(rep.Summary(), ", 4 name separators replaced by the middle dot ·") {
				t.Errorf("%d sent; %s; want 4 sent and 4 name separators replaced", sent, rep.Summary())
			}
			if rep.Rejected != 1 || rep.Rejects[0].Field != "data.name" || rep.Rejects[0].Column != "姓名" ||
				!strings.Contains(rep.Rejects[0].Detail, "U+30FB") || !strings.Contains(rep.Rejects[0].Detail, "U+00B7") {
				t.Errorf("rejects %v; want the line of ・买买提 rejected on data.name (column 姓名) naming U+30FB and U+00B7", rep.Rejects)
			}
		})
	}
}

// TestNameCells: a name cell is sent as the clerk typed it, trimmed of
// padding (also inside an export's ="…") and with the middle dot between
// the parts of a two-part name, and refused on its column, naming the
// character, when it holds one that shows as nothing: the hub would
// refuse it, and the clerk cannot see it.
func TestNameCells(t *testing.T) {
	m, tab, reg := registrationRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	nc := colIndex(t, tab, "姓名")
	for _, tc := range []struct {
		name, cell, want string
		separators       int
		refused          string // what the reject's detail says
	}{
		{"padded with ideographic spaces", "\u3000张三\u3000", "张三", 0, ""},
		{"padded inside an export's wrapper", "=\"\u3000张三 \"", "张三", 0, ""},
		{"a look-alike after an apostrophe", "'阿依古丽・买买提", "阿依古丽·买买提", 1, ""},
		{"full width kept", "Ｌｉ Ｌｅｉ", "Ｌｉ Ｌｅｉ", 0, ""},
		{"a zero width space inside", "张\u200b三", "", 0, "U+200B (zero width space)"},
		{"a direction override", "\u202e三张", "", 0, "U+202E (right-to-left override)"},
		{"a doubled look-alike", "阿依古丽・・买买提", "", 0, "use U+00B7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cells := append([]string(nil), reg...)
			cells[nc] = tc.cell
			got := p.mapRow(2, cells, nil, time.Now())
			if tc.refused != "" {
				if got.rej == nil || got.rej.Field != "data.name" || got.rej.Column != "姓名" || !strings.Contains(got.rej.Detail, tc.refused) {
					t.Errorf("reject %v; want one on data.name (column 姓名) saying %q", got.rej, tc.refused)
				}
				return
			}
			if got.rej != nil {
				t.Fatalf("rejected: %s", got.rej)
			}
			if name := dataOf(t, got.value)["name"]; name != tc.want || got.separators != tc.separators {
				t.Errorf("sent %q, %d separators replaced; want %q, %d", name, got.separators, tc.want, tc.separators)
			}
		})
	}
}
