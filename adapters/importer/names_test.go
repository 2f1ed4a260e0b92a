package importer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

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
