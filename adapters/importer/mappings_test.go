package importer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// TestExampleMappingsSendCorrectionsInLaterFiles: a department that
// copies a shipped mapping corrects a record by sending its row again, in
// a later file, with other cells and the version column raised, as its
// system does on every correction. Each import sends its line, and the two
// events have different ids: were the ids the same, the hub would count
// the correction as a repeat and keep the record as it was, and within
// one file the importer would have said so, but across files nothing
// does.
func TestExampleMappingsSendCorrectionsInLaterFiles(t *testing.T) {
	later := func(layout string, d time.Duration) func(string) (string, error) {
		return func(v string) (string, error) {
			at, err := time.Parse(layout, v)
			return at.Add(d).Format(layout), err
		}
	}
	renamed := func(v string) (string, error) { return v + "（更正）", nil }
	// corrections says, per source, which line is corrected (the cell of
	// the type column, "" for any) and how: a column and its new value.
	corrections := map[schemas.Source]struct {
		typ, column string
		correct     func(string) (string, error)
	}{
		schemas.Employment:      {"合同签订", "合同终止日期", later("2006/1/2", 2*365*24*time.Hour)},
		schemas.Health:          {"", "死亡日期", later(time.DateOnly, -24*time.Hour)},
		schemas.Education:       {"入学", "学校名称", renamed},
		schemas.Housing:         {"租赁登记备案", "租期止", later("2006/1/2", 365*24*time.Hour)},
		schemas.Tax:             {"设立登记", "企业名称", renamed},
		schemas.Marriage:        {"", "登记时间", later(time.DateTime, -time.Hour)},
		schemas.SocialInsurance: {"", "经办时间", later(time.DateTime, -time.Hour)},
	}
	for _, src := range schemas.Sources {
		if src == schemas.PublicSecurity {
			// 业务流水号 numbers a business of the household register,
			// never reused: a correction is a business of its own
			// (身份信息更正, identity.corrected) under a number of its
			// own.
			continue
		}
		t.Run(string(src), func(t *testing.T) {
			t.Parallel()
			c, ok := corrections[src]
			if !ok {
				t.Fatalf("no correction of a %s line", src)
			}
			m := mustMapping(t, src)
			persons := 300
			if src == schemas.Health {
				persons = 3000 // deaths are rare
			}
			tab, _ := render(t, m, population(t, persons, src))
			row := correctedLine(t, m, tab, c.typ)
			fixed := append([]string(nil), row...)
			col := colIndex(t, tab, c.column)
			v, err := c.correct(row[col])
			if err != nil {
				t.Fatalf("correcting %s: %v", c.column, err)
			}
			fixed[col] = v
			raiseVersion(t, m, tab, fixed)

			addr := testenv.Kafka(t, partitions)
			enc := utf8Plain
			if m.Encoding == "gbk" {
				enc = gbk
			}
			for i, r := range [][]string{row, fixed} {
				file := tempFile(t, fmt.Sprintf("export-%d.csv", i+1))
				writeCSV(t, file, table{header: tab.header, rows: [][]string{r}}, enc)
				rep, err := Run(context.Background(), Config{Source: src, File: file, Mapping: m, Brokers: []string{addr}})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Sent != 1 || len(rep.Rejects) > 0 {
					t.Fatalf("import %d: %d sent, rejects %v; want the line sent", i+1, rep.Sent, rep.Rejects)
				}
			}
			events := decodeAll(t, testenv.Records(t, addr, schemas.Topic(src)))
			if len(events) != 2 {
				t.Fatalf("%d events on the topic, want the record and its correction", len(events))
			}
			if events[0].ID == events[1].ID {
				t.Errorf("the correction of %s in a later file has the event id of the record it corrects: the hub ignores it as a repeat; "+
					"the mapping needs an id.version the department raises with every correction", c.column)
			}
			layout := layoutsOr(m.Time.Layout, timeLayouts)[0]
			if fingerprint(t, events[0], layout) == fingerprint(t, events[1], layout) {
				t.Errorf("the correction of %s sent the record unchanged", c.column)
			}
		})
	}
}

// correctedLine is the first line of tab of the type column's cell typ
// ("" for any).
func correctedLine(t testing.TB, m *Mapping, tab table, typ string) []string {
	t.Helper()
	for _, r := range tab.rows {
		if typ == "" || r[colIndex(t, tab, m.Type.Column)] == typ {
			return r
		}
	}
	t.Fatalf("no %s line in the table", typ)
	return nil
}

// raiseVersion raises row's version cell as the department's system does
// on a correction: an integer by one, a time by a day (a month by a
// month). A mapping without
// a version column leaves the row as it is: there is nothing to raise.
func raiseVersion(t testing.TB, m *Mapping, tab table, row []string) {
	t.Helper()
	v := m.ID.Version
	if v.Column == "" {
		return
	}
	col := colIndex(t, tab, v.Column)
	layouts := versionLayouts(v)
	if layouts == nil {
		n, err := strconv.ParseInt(row[col], 10, 64)
		if err != nil {
			t.Fatalf("version %s: %v", v.Column, err)
		}
		row[col] = strconv.FormatInt(n+1, 10)
		return
	}
	at, err := time.Parse(layouts[0], strings.TrimSpace(row[col]))
	if err != nil {
		t.Fatalf("version %s: %v", v.Column, err)
	}
	if v.Kind == KindMonth {
		at = at.AddDate(0, 1, 0)
	} else {
		at = at.AddDate(0, 0, 1)
	}
	row[col] = at.Format(layouts[0])
}

// versionLayouts are the layouts a version field reads, as newColumn
// gives them; nil for an integer.
func versionLayouts(f Field) []string {
	switch f.Kind {
	case KindDate:
		return layoutsOr(f.Layout, dateLayouts)
	case KindMonth:
		return layoutsOr(f.Layout, monthLayouts)
	}
	if f.Layout != "" {
		return []string{f.Layout}
	}
	return nil
}
