package importer

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
)

// asciiColumns renames the columns of m to ASCII names, as some systems
// export them, so that a file's header reads the same in UTF-8 and GBK.
func asciiColumns(m *Mapping) {
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
}

// TestUTF8ToldGBK: a UTF-8 file told to be GBK — by the mapping or the
// flag — whose header is ASCII reads without error in GBK, every Chinese
// character garbled (张三 → 寮犱笁). Its text is valid UTF-8 holding
// Chinese characters, which GBK text practically never is, so it is
// refused before a line is read, naming the file, what it is and what to
// set; nothing is sent. A UTF-8 file of ASCII alone reads the same in both
// and is imported, and so is a GBK file told GBK.
func TestUTF8ToldGBK(t *testing.T) {
	m := mustMapping(t, schemas.PublicSecurity)
	asciiColumns(m)
	tab, events := render(t, m, population(t, 40, schemas.PublicSecurity))
	asciiTab := table{header: tab.header, rows: [][]string{}}
	for _, r := range tab.rows {
		ascii := true
		for _, c := range r {
			ascii = ascii && strings.IndexFunc(c, func(r rune) bool { return r > 0x7f }) < 0
		}
		if ascii {
			asciiTab.rows = append(asciiTab.rows, r)
		}
	}
	for _, tc := range []struct {
		name          string
		tab           table
		written       string
		mapping, flag string
		stream        bool
		refused       bool
		wantSent      int
	}{
		{"utf-8, the mapping says gbk", tab, utf8Plain, "gbk", "", false, true, 0},
		{"utf-8, the mapping says gbk, streaming", tab, utf8Plain, "gbk", "", true, true, 0},
		{"utf-8, the flag says gbk", tab, utf8Plain, "auto", "gbk", false, true, 0},
		{"utf-8, the flag says gbk, streaming", tab, utf8Plain, "", "gbk", true, true, 0},
		{"utf-8 of ASCII alone, the mapping says gbk", asciiTab, utf8Plain, "gbk", "", false, false, len(asciiTab.rows)},
		{"gbk, the mapping says gbk", tab, gbk, "gbk", "", false, false, len(events)},
		{"gbk, the flag says gbk, streaming", tab, gbk, "", "gbk", true, false, len(events)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := tempFile(t, "hukou.csv")
			writeCSV(t, file, tc.tab, tc.written)
			m := *m
			m.Encoding = tc.mapping
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: &m, Encoding: tc.flag, Brokers: []string{addr}, Stream: tc.stream})
			if tc.refused {
				for _, want := range []string{file, "UTF-8", "gbk", "encoding: auto", "--encoding auto"} {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("error %v, want one saying %q", err, want)
					}
				}
				if rep.Read != 0 {
					t.Errorf("%d lines read before the refusal", rep.Read)
				}
			} else if err != nil || rep.Sent != tc.wantSent || rep.Rejected != 0 {
				t.Errorf("%v: %d sent, %d rejected; want %d sent", err, rep.Sent, rep.Rejected, tc.wantSent)
			}
			if n := len(testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity))); n != tc.wantSent {
				t.Errorf("%d records on the topic, want %d", n, tc.wantSent)
			}
		})
	}
}

// TestChineseUTF8: the refusal of a UTF-8 file told GBK needs valid
// UTF-8 with a Chinese character; GBK text, ASCII and UTF-8 without
// Chinese characters do not set it off.
func TestChineseUTF8(t *testing.T) {
	gbkText, err := simplifiedchinese.GBK.NewEncoder().String("name,ethnicity\n张三,汉族\n")
	if err != nil {
		t.Fatal(err)
	}
	utf := "name,ethnicity\n张三,汉族\n"
	for _, tc := range []struct {
		name   string
		sample string
		atEOF  bool
		want   bool
	}{
		{"utf-8 Chinese", utf, true, true},
		{"utf-8 Chinese cut inside a character", utf[:len(utf)-3], false, true},
		{"gbk Chinese", gbkText, true, false},
		{"ascii", "name,id\nx,1\n", true, false},
		{"utf-8 without Chinese", "name\nJosé\n", true, false},
		// 专一 in GBK, d7 a8 d2 bb, is valid UTF-8 by chance: Hebrew and
		// Cyrillic letters, no Chinese character.
		{"gbk that is valid utf-8 by chance", "name\n\xd7\xa8\xd2\xbb\n", true, false},
	} {
		if got := chineseUTF8([]byte(tc.sample), tc.atEOF); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
