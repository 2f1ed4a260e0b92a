package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestDelimiters: a CSV export whose cells are delimited by tabs,
// semicolons or bars is read as its mapping or --delimiter says, cells
// holding the delimiter quoted; every line's event reaches the topic as
// the table has it, and a line with broken quoting is rejected whole, the
// quote after a delimiter opening a quoted cell as it does after a comma.
func TestDelimiters(t *testing.T) {
	addr := testenv.Kafka(t, partitions)
	tests := []struct {
		name              string
		comma             rune
		mapping, override string
	}{
		{"tab in the mapping", '\t', "tab", ""},
		{"tab as YAML writes \\t", '\t', "\t", ""},
		{"semicolon as the flag, over the mapping's comma", ';', "", ";"},
		{"bar in the mapping", '|', "|", ""},
		{"flag's tab over the mapping's semicolon", '\t', ";", `\t`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, tab, events := housingRows(t, 40)
			m.Encoding, m.Delimiter = "utf-8", tt.mapping
			d := string(tt.comma)
			// A cell holding the delimiter, which the writer quotes: the
			// department's own record key, which only the event id reads.
			key := colIndex(t, tab, "业务编号")
			tab.rows[0][key] += d + "补"
			var b bytes.Buffer
			w := csv.NewWriter(&b)
			w.Comma = tt.comma
			w.Write(tab.header)
			w.WriteAll(tab.rows[:2])
			w.Flush()
			// Line 4–5: a quoted cell after a delimiter, broken across
			// two lines.
			b.WriteString("租赁登记备案" + d + "\"a\nb\"c" + d + "x\n")
			// Lines 6–7: a row longer than 1 MiB, whose quoted cell after
			// a delimiter spans two lines; it is skipped whole, unread.
			b.WriteString("租赁登记备案" + d + "\"" + strings.Repeat("长", maxRowBytes/3+1) + "\n续\"" + d + "x\n")
			w.WriteAll(tab.rows[2:])
			w.Flush()
			file := tempFile(t, "housing.csv")
			if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, Delimiter: tt.override, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Valid != len(events) || rep.Rejected != 2 {
				t.Fatalf("%d valid, %d rejected (%v); want %d and the two broken rows", rep.Valid, rep.Rejected, rep.Rejects, len(events))
			}
			if r := rep.Rejects[0]; r.Reason != ReasonMalformedRow || r.Line != 4 || !strings.Contains(r.Detail, "lines 4–5") {
				t.Errorf("reject %s; want lines 4–5 malformed, read as one row", r)
			}
			if r := rep.Rejects[1]; r.Reason != ReasonMalformedRow || r.Line != 6 || !strings.Contains(r.Detail, "row longer than 1 MiB (lines 6–7 were read as one row)") {
				t.Errorf("reject %s; want lines 6–7 too long, read as one row", r)
			}
			if rep.Read != len(events)+2 {
				t.Errorf("%d lines read, want %d", rep.Read, len(events)+2)
			}
		})
	}

	t.Run("sent as the table has them", func(t *testing.T) {
		m, tab, events := housingRows(t, 60)
		m.Encoding, m.Delimiter = "gbk", "tab"
		key := colIndex(t, tab, "业务编号")
		tab.rows[1][key] += "\t补,二"
		file := tempFile(t, "housing.csv")
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Comma = '\t'
		w.Write(tab.header)
		w.WriteAll(tab.rows)
		w.Flush()
		gb, err := simplifiedchinese.GBK.NewEncoder().Bytes(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, gb, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, Brokers: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rejected != 0 || rep.Sent != len(events) {
			t.Fatalf("%d rejected (%v), %d sent; want all %d sent", rep.Rejected, rep.Rejects, rep.Sent, len(events))
		}
		layout := layoutsOr(m.Time.Layout, timeLayouts)[0]
		want := map[string]int{}
		for _, ev := range events {
			want[fingerprint(t, ev, layout)]++
		}
		got := decodeAll(t, testenv.Records(t, addr, schemas.Topic(schemas.Housing)))
		if len(got) != len(events) {
			t.Fatalf("%d records on the topic, want %d", len(got), len(events))
		}
		for _, ev := range got {
			fp := fingerprint(t, ev, layout)
			if want[fp] == 0 {
				t.Fatalf("a %s event on the topic is not one of the table's (or is there twice): %s", ev.Type, ev.Data)
			}
			want[fp]--
		}
	})
}

// TestDelimiterMistakes: a file read with the wrong delimiter says which
// one its header seems to use, and a delimiter the importer does not read
// is refused before anything is read.
func TestDelimiterMistakes(t *testing.T) {
	m, tab, _ := housingRows(t, 5)
	m.Encoding = "utf-8"
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Comma = '\t'
	w.Write(tab.header)
	w.WriteAll(tab.rows)
	w.Flush()
	file := tempFile(t, "housing.csv")
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true})
	if err == nil || !strings.Contains(err.Error(), "the cells may be delimited by tabs; set delimiter: tab in the mapping, or --delimiter tab") {
		t.Errorf("a tab-delimited file read with commas: %v; want a hint at the delimiter", err)
	}

	for _, bad := range []string{":", ",;", "comma", " "} {
		_, err := Run(context.Background(), Config{Source: schemas.Housing, File: file, Mapping: m, DryRun: true, Delimiter: bad})
		if want := "delimiter \"" + bad + "\" is not one of , ; | tab"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--delimiter %q: %v; want %q", bad, err, want)
		}
		mm := *m
		mm.Delimiter = bad
		if err := mm.Validate(); err == nil || !strings.Contains(err.Error(), "is not one of , ; | tab") {
			t.Errorf("mapping delimiter %q: %v", bad, err)
		}
	}
}
