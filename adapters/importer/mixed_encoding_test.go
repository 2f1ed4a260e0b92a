package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/pophub/pophub/internal/testenv"
	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// hukouLines writes registrations whose only Chinese cell is the name,
// under an ASCII header, so that nothing but the names tells the
// encodings apart: the case where a UTF-8 name read as GBK still looks
// like Chinese (张三 as 寮犱笁). Each line is encoded as its name's entry
// in gbkNames says.
type hukouLines struct {
	m    *Mapping
	cols []string
}

func newHukouLines(t *testing.T, encoding string) *hukouLines {
	m := mustMapping(t, schemas.PublicSecurity)
	asciiColumns(m)
	m.Encoding = encoding
	m.Type.Map = map[string]schemas.Type{"01": schemas.HukouRegistered}
	f := m.DataByType[schemas.HukouRegistered]
	reason := f["reason"]
	reason.Map = map[string]string{"1": "birth"}
	f["reason"] = reason
	cols := []string{m.Type.Column, m.Subject.Column, m.Time.Column, m.ID.Key[0]}
	for _, k := range []string{"name", "gender", "birth_date", "ethnicity", "address_code", "household_id", "relation", "reason"} {
		cols = append(cols, f[k].Column)
	}
	return &hukouLines{m: m, cols: cols}
}

// file writes the header and a line per name, the names in gbk encoded
// as GBK, the others as UTF-8.
func (h *hukouLines) file(t *testing.T, names []string, gbk map[string]bool) string {
	t.Helper()
	var buf bytes.Buffer
	line := func(cells ...string) string { return strings.Join(cells, ",") + "\r\n" }
	buf.WriteString(line(h.cols...))
	for i, name := range names {
		seq := 201 + i
		first17 := "11010119900307" + strconv.Itoa(seq)
		id := first17 + string(citizenid.CheckChar(first17))
		gender := "2"
		if seq%2 == 1 {
			gender = "1"
		}
		text := line("01", id, "2024-01-01 10:00:00", fmt.Sprint("N", i), name, gender, "19900307", "01", "110101001001", fmt.Sprint("H", i), "02", "1")
		if gbk[name] {
			var err error
			if text, err = simplifiedchinese.GBK.NewEncoder().String(text); err != nil {
				t.Fatal(err)
			}
		}
		buf.WriteString(text)
	}
	file := tempFile(t, "hukou.csv")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestMixedEncodingLines: an export with lines of another encoding in it
// (a UTF-8 export a GBK tool appended to, or the other way round) is read
// in the encoding most of its lines are in, and each line in the other is
// rejected as malformed_row, saying which encoding it is in; the rejects
// file holds it as it reads in its own encoding. No name is ever sent
// garbled, as a UTF-8 name of an even number of bytes read as GBK would
// be (张三 as 寮犱笁), nor is a line lost. A file told GBK whose lines are
// mostly UTF-8 is refused, naming the lines that are not.
func TestMixedEncodingLines(t *testing.T) {
	// UTF-8 names of even (张三) and odd (张三丰) numbers of bytes: 张三丰
	// read as GBK has bytes that are not valid GBK, 张三 does not.
	gbkNames := []string{"李雷", "韩梅梅", "赵四", "司马相如", "孙七", "周八"}
	isGBK := map[string]bool{}
	for _, n := range gbkNames {
		isGBK[n] = true
	}
	for _, tc := range []struct {
		name     string
		encoding string // the mapping's
		lines    []string
		refused  []string // what the refusal names
	}{
		{"utf-8 with a gbk line", "auto", []string{"张三", "王五", "李雷", "张三丰", "欧阳娜娜"}, nil},
		{"utf-8 with a gbk line, told utf-8", "utf-8", []string{"张三", "王五", "李雷", "张三丰", "欧阳娜娜"}, nil},
		{"gbk with utf-8 lines", "auto", []string{"李雷", "韩梅梅", "张三", "赵四", "司马相如", "张三丰", "孙七", "周八"}, nil},
		{"gbk with utf-8 lines, told gbk", "gbk", []string{"李雷", "韩梅梅", "张三", "赵四", "司马相如", "张三丰", "孙七", "周八"}, nil},
		{"utf-8 with a gbk line, told gbk", "gbk", []string{"张三", "王五", "李雷", "张三丰", "欧阳娜娜"},
			[]string{"UTF-8", "gbk", "encoding: auto", "--encoding auto", "line 4 is not UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHukouLines(t, tc.encoding)
			file := h.file(t, tc.lines, isGBK)
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: h.m, Brokers: []string{addr}})
			var sent []string
			for _, r := range testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity)) {
				var ev struct {
					Data struct{ Name string } `json:"data"`
				}
				if err := json.Unmarshal(r.Value, &ev); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, ev.Data.Name)
			}
			if tc.refused != nil {
				for _, want := range tc.refused {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("error %v, want one saying %q", err, want)
					}
				}
				if len(sent) > 0 {
					t.Errorf("sent %q from a refused file", sent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The encoding of most lines wins; the others are rejected.
			var utf8Count int
			for _, n := range tc.lines {
				if !isGBK[n] {
					utf8Count++
				}
			}
			majorityUTF8 := utf8Count*2 > len(tc.lines)
			var wantSent, wantRejected []string
			for _, n := range tc.lines {
				if isGBK[n] != majorityUTF8 {
					wantSent = append(wantSent, n)
				} else {
					wantRejected = append(wantRejected, n)
				}
			}
			slices.Sort(sent)
			slices.Sort(wantSent)
			if !slices.Equal(sent, wantSent) {
				t.Errorf("sent names %q, want %q", sent, wantSent)
			}
			want := "is UTF-8, in a file read as GBK"
			if majorityUTF8 {
				want = "is GBK, in a file read as UTF-8"
			}
			if rep.Rejected != len(wantRejected) {
				t.Fatalf("rejects %v, want %d", rep.Rejects, len(wantRejected))
			}
			for _, r := range rep.Rejects {
				if r.Reason != ReasonMalformedRow || !strings.Contains(r.Detail, want) {
					t.Errorf("reject %v, want a malformed_row saying the line %s", r, want)
				}
			}
			// The rejects file holds each such line as it reads in its own
			// encoding: its name, not garbled, not U+FFFD.
			b, err := os.ReadFile(rep.RejectsFile)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte(bom)))).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			nameCol := 5 + slices.Index(h.cols, h.m.DataByType[schemas.HukouRegistered]["name"].Column)
			var held []string
			for _, r := range recs[1:] {
				if nameCol < len(r) {
					held = append(held, r[nameCol])
				}
			}
			slices.Sort(held)
			slices.Sort(wantRejected)
			if !slices.Equal(held, wantRejected) {
				t.Errorf("the rejects file holds names %q, want %q", held, wantRejected)
			}
		})
	}
}

// TestUTF8LineOfOtherCharactersInGBKFile: a UTF-8 line of a GBK file is
// recognised also when its name holds more than common Chinese
// characters — a rare character of a CJK extension, the katakana middle
// dot of minority names, a dash — rather than decoded as GBK into other
// characters and sent.
func TestUTF8LineOfOtherCharactersInGBKFile(t *testing.T) {
	gbkNames := []string{"李雷", "韩梅梅", "赵四", "司马相如", "孙七", "周八"}
	isGBK := map[string]bool{}
	for _, n := range gbkNames {
		isGBK[n] = true
	}
	for _, odd := range []string{"买买提・艾力", "陈𠮷华", "王—明", "李①"} {
		t.Run(odd, func(t *testing.T) {
			h := newHukouLines(t, "auto")
			file := h.file(t, append(append([]string{}, gbkNames...), odd), isGBK)
			addr := testenv.Kafka(t, partitions)
			rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: h.m, Brokers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sent != len(gbkNames) || rep.Rejected != 1 {
				t.Errorf("sent %d, rejected %d; want the %d GBK lines sent and the UTF-8 line rejected", rep.Sent, rep.Rejected, len(gbkNames))
			}
			for _, r := range testenv.Records(t, addr, schemas.Topic(schemas.PublicSecurity)) {
				var ev struct {
					Data struct{ Name string } `json:"data"`
				}
				if err := json.Unmarshal(r.Value, &ev); err != nil {
					t.Fatal(err)
				}
				if !isGBK[ev.Data.Name] {
					t.Errorf("sent name %q, garbled from the UTF-8 line %q", ev.Data.Name, odd)
				}
			}
		})
	}
}

// TestUserDefinedCharacterInGBKLineOfUTF8File: a GBK line of a UTF-8
// file whose name holds a character of GBK's user-defined areas (造字) is
// rejected naming that character's column and what it is, not as bytes
// that are neither UTF-8 nor GBK; the other lines are sent.
func TestUserDefinedCharacterInGBKLineOfUTF8File(t *testing.T) {
	h := newHukouLines(t, "auto")
	file := h.file(t, []string{"张三", "王五", "李雷", "欧阳娜娜"}, map[string]bool{"李雷": true})
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lei, err := simplifiedchinese.GBK.NewEncoder().String("雷")
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(lei), []byte{0xAA, 0xA1}, 1) // 李 and a 造字
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.Kafka(t, partitions)
	rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: h.m, Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	name := h.m.DataByType[schemas.HukouRegistered]["name"].Column
	if rep.Sent != 3 || rep.Rejected != 1 || rep.Rejects[0].Line != 4 ||
		!strings.Contains(rep.Rejects[0].Detail, "column "+name+" holds a character of GBK's user-defined area (造字)") {
		t.Fatalf("sent %d, rejects %v; want 3 sent and line 4 rejected naming the 造字 in column %s", rep.Sent, rep.Rejects, name)
	}
}
