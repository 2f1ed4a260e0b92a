package importer

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/width"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// registrationRow returns the public security mapping, a rendered table
// of its events and a hukou registration row of it.
func registrationRow(t *testing.T) (*Mapping, table, []string) {
	t.Helper()
	m := mustMapping(t, schemas.PublicSecurity)
	tab, _ := render(t, m, population(t, 60, schemas.PublicSecurity))
	for _, r := range tab.rows {
		if r[colIndex(t, tab, "业务类型")] == "户口登记" && r[colIndex(t, tab, "姓名")] != "" {
			return m, tab, append([]string(nil), r...)
		}
	}
	t.Fatal("no hukou registration in the population")
	return nil, table{}, nil
}

// dataOf is the data of an encoded event.
func dataOf(t *testing.T, value []byte) map[string]any {
	t.Helper()
	var ev struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(value, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Data
}

// TestInvisibleCharacters: characters that show as nothing — zero-width
// space, non-joiner and joiner, word joiner, and the byte order mark
// anywhere, not only at the file's start — at the edges of a cell or a
// header cell are trimmed like spaces, since a clerk cannot see them: an
// ID shows its 18 characters and is read so, a header cell matches its
// column, a name is sent without them. One inside an ID cell is rejected
// naming it, rather than as an ID of the wrong length.
func TestInvisibleCharacters(t *testing.T) {
	m, tab, reg := registrationRow(t)
	subjectCol, nameCol := colIndex(t, tab, "公民身份号码"), colIndex(t, tab, "姓名")
	id, name := reg[subjectCol], reg[nameCol]
	for _, inv := range []string{"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"} {
		t.Run(fmtRune(inv), func(t *testing.T) {
			header := append([]string(nil), tab.header...)
			header[nameCol] += inv
			header[subjectCol] = inv + header[subjectCol]
			p, err := newPlan(m, header)
			if err != nil {
				t.Fatalf("a header cell with an invisible character at its edge: %v", err)
			}
			cells := append([]string(nil), reg...)
			cells[subjectCol] = id + inv
			cells[nameCol] = inv + name + " " + inv
			got := p.mapRow(2, cells, nil, time.Now())
			if got.rej != nil {
				t.Fatalf("rejected: %s", got.rej)
			}
			if string(got.key) != id {
				t.Errorf("key %q, want the ID", got.key)
			}
			if n := dataOf(t, got.value)["name"]; n != name {
				t.Errorf("name %q sent, want %q", n, name)
			}
			cells[subjectCol] = id[:9] + inv + id[9:]
			got = p.mapRow(2, cells, nil, time.Now())
			want := "holds an invisible character " + fmtRune(inv)
			if got.rej == nil || got.rej.Reason != schemas.ReasonInvalidSubject || !strings.Contains(got.rej.Detail, want) {
				t.Errorf("reject %v, want invalid_subject saying %q", got.rej, want)
			}
		})
	}
}

// fmtRune writes the one character of s as U+XXXX.
func fmtRune(s string) string {
	r := []rune(s)[0]
	const hex = "0123456789ABCDEF"
	return "U+" + string([]byte{hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf]})
}

// TestFullWidthCodeCells: digits typed in full width, as an input method
// in full-width mode writes them, are read as ASCII in every cell read as
// a date, a time, a number or a code, as they are in ID cells; a name,
// free text, is sent as typed.
func TestFullWidthCodeCells(t *testing.T) {
	m, tab, reg := registrationRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	set := func(col, v string) []string {
		cells := append([]string(nil), reg...)
		cells[colIndex(t, tab, col)] = v
		return cells
	}
	wide := func(col string) string { return width.Widen.String(reg[colIndex(t, tab, col)]) }
	half := func(s string) string { return s[:len(s)/2] }
	for _, tc := range []struct {
		name  string
		cells []string
		field string
		want  any
	}{
		{"a date partly in full width", set("出生日期", width.Widen.String(half(reg[colIndex(t, tab, "出生日期")]))+reg[colIndex(t, tab, "出生日期")][4:]), "birth_date", nil},
		{"an address code", set("住址区划代码", wide("住址区划代码")), "address_code", reg[colIndex(t, tab, "住址区划代码")]},
		{"an ethnicity code", set("民族", "０１"), "ethnicity", "01"},
		{"the time", set("业务办理时间", wide("业务办理时间")), "", nil},
		{"a name is not folded", set("姓名", "Ｌｉ Ｌｅｉ"), "name", "Ｌｉ Ｌｅｉ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.mapRow(2, tc.cells, nil, time.Now())
			if got.rej != nil {
				t.Fatalf("rejected: %s", got.rej)
			}
			if tc.field == "" {
				return
			}
			want := tc.want
			if want == nil {
				want = dataOf(t, p.mapRow(2, reg, nil, time.Now()).value)[tc.field]
			}
			if v := dataOf(t, got.value)[tc.field]; v != want {
				t.Errorf("%s %v, want %v", tc.field, v, want)
			}
		})
	}
	for _, tc := range []struct{ value, want string }{
		{"８９．５", "89.5"},
		{"１，２３４", "1234"},
	} {
		c := column{name: "area_m2", col: 0, kind: KindNumber}
		got, set, _, err := c.appendValue(nil, []string{tc.value}, nil, false)
		if err != nil || !set || string(got) != tc.want {
			t.Errorf("number %q: %s (%v), want %s", tc.value, got, err, tc.want)
		}
	}
}

// TestTextForcedIDCells: an ID an export forced to stay text, as the
// formula ="110101…" or with a leading apostrophe, is read as the ID.
func TestTextForcedIDCells(t *testing.T) {
	m, tab, reg := registrationRow(t)
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	subjectCol := colIndex(t, tab, "公民身份号码")
	id := reg[subjectCol]
	for _, v := range []string{`="` + id + `"`, "'" + id} {
		cells := append([]string(nil), reg...)
		cells[subjectCol] = v
		if got := p.mapRow(2, cells, nil, time.Now()); got.rej != nil || string(got.key) != id {
			t.Errorf("%s: key %q, reject %v; want the ID", v, got.key, got.rej)
		}
	}
}

// TestTextForcedCells: exports that keep long numbers from Excel write
// every such column as ="…" or with a leading apostrophe, not only the
// citizen ID: 户号, 住址区划代码, 出生日期. A clerk relies on each being
// read as the spreadsheet shows it: a household number sent without the
// wrapper (the same household as in an export without it), a code and a
// date read, not refused.
func TestTextForcedCells(t *testing.T) {
	m, tab, rows := hukouRegistrations(t, 4)
	hc, ac, bc, kc := colIndex(t, tab, "户号"), colIndex(t, tab, "住址区划代码"), colIndex(t, tab, "出生日期"), colIndex(t, tab, "业务流水号")
	in := table{header: tab.header}
	want := map[string]string{} // household ids by subject, as sent from cells without wrappers
	p, err := newPlan(m, tab.header)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		plain := p.mapRow(i+2, r, nil, time.Now())
		if plain.rej != nil {
			t.Fatal(plain.rej)
		}
		want[string(plain.key)] = r[hc]
		r = append([]string(nil), r...)
		switch i {
		case 0:
			r[hc] = `="` + r[hc] + `"`
		case 1:
			r[hc] = "'" + r[hc]
		case 2:
			r[ac], r[bc] = `="`+r[ac]+`"`, `="`+r[bc]+`"`
		case 3:
			r[kc] = `="` + r[kc] + `"`
		}
		in.rows = append(in.rows, r)
	}
	file := tempFile(t, "hukou.csv")
	writeCSV(t, file, in, utf8BOM)
	addr := testenv.Kafka(t, partitions)
	rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rejects {
		t.Errorf("rejected: %s", r)
	}
	evs := decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity)))
	if len(evs) != len(rows) {
		t.Errorf("%d events sent, want %d", len(evs), len(rows))
	}
	for _, ev := range evs {
		var d map[string]any
		json.Unmarshal(ev.Data, &d)
		h, ok := want[string(ev.Subject)]
		switch {
		case !ok:
			t.Errorf("sent event %s, of a subject no cell without its wrapper gives", ev.ID)
		case d["household_id"] != h:
			t.Errorf("sent household_id %q, want %q", d["household_id"], h)
		}
	}
}

// TestTextForcedCellsKeepIDs: a line whose cells an export wrapped as
// ="…" or '… has the event id pophub has always given it, computed over
// the cells as they are, wrapper and all, though its values are read
// without: a clerk relies on a resume, or the same export imported again,
// finding the lines sent before among those the hub holds, not sending
// them again under new ids. The ids are pinned: they must never change.
func TestTextForcedCellsKeepIDs(t *testing.T) {
	si := []string{"参保登记", `="230604198401270165"`, "2010-02-28 09:20:00", "养老保险、医疗保险、失业保险、工伤保险", "", "230603", "职工", "2010-02-28", "", ""}
	hukou := []string{"户口登记", "230604198401270165", "1984-02-03 10:32:00", `="202402030001"`, "", "", "H230604000000000", "", "230604017004", "19840127", "汉族", "女性", "徐婷", "出生登记", "户主"}
	for _, tc := range []struct {
		name   string
		source schemas.Source
		header []string
		row    []string
		id     string
	}{
		{name: "no key, ID as formula", source: schemas.SocialInsurance, header: siHeader, row: si,
			id: "social_insurance-e879c2368da2649ab0bb4a18-8000000000000000"},
		{name: "no key, ID after an apostrophe", source: schemas.SocialInsurance, header: siHeader, row: with(si, 1, "'230604198401270165"),
			id: "social_insurance-1268343e1f90c7559680de96-8000000000000000"},
		{name: "key column as formula", source: schemas.PublicSecurity, header: hukouHeader, row: with(hukou, 1, `="230604198401270165"`),
			id: "public_security-07607108a3baf51d38f4f0da-8000000000000000"},
		{name: "key column after an apostrophe", source: schemas.PublicSecurity, header: hukouHeader, row: with(hukou, 3, "'202402030001"),
			id: "public_security-a380351b4b024f53d9301703-8000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newPlan(mustMapping(t, tc.source), tc.header)
			if err != nil {
				t.Fatal(err)
			}
			m := p.mapRow(2, tc.row, nil, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			if m.rej != nil {
				t.Fatal(m.rej)
			}
			if m.id != tc.id {
				t.Errorf("event id %s, want %s as always", m.id, tc.id)
			}
		})
	}
}

var (
	siHeader    = []string{"业务类型", "身份证号码", "经办时间", "险种", "缴费月份", "参保地区划代码", "参保类别", "业务日期", "转出地区划代码", "转入地区划代码"}
	hukouHeader = []string{"业务类型", "公民身份号码", "业务办理时间", "业务流水号", "注销原因", "迁出地区划代码", "户号", "迁移原因", "住址区划代码", "出生日期", "民族", "性别", "姓名", "登记原因", "与户主关系"}
)

// with returns a copy of row with cell i set to v.
func with(row []string, i int, v string) []string {
	out := slices.Clone(row)
	out[i] = v
	return out
}
