package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pophub/pophub/internal/testenv"
)

// TestClassify: names decide first, then committee numbers.
func TestClassify(t *testing.T) {
	tests := []struct {
		name, code, entry string
		class, rule       string
	}{
		{"residents' committee", "230102001001", "省报社社区居委会", "u", "name"},
		{"community", "110105020400", "机场工作区社区", "u", "name"},
		{"truncated 居委", "230102001002", "新建社区居委", "u", "name"},
		{"village committee", "230111003200", "大堡村村委会", "r", "name"},
		{"bare village", "230111003201", "兰河村", "r", "name"},
		{"gacha", "150203102211", "卜尔汉图嘎查", "r", "name"},
		{"name beats number", "130406103019", "薛村矿社区村民委员会", "r", "name"},
		{"note stripped", "310115001001", "卢湾村委会（长阳社区）", "r", "name"},
		{"living area numbered 5xx", "110108024500", "小营股份经济合作社生活区", "r", "number"},
		{"zone numbered 4xx", "131103401400", "河北冀州高新技术产业开发区南管理区", "u", "number"},
		{"numbered 1xx", "130624100001", "阜平县社区服务中心", "u", "number"},
		{"numbered 2xx", "120113106201", "第一街委员会", "r", "number"},
		{"placeholder 000", "350527000000", "金门县", "r", "number"},
		{"only a note: number 003", "230102001003", "（特殊区域）", "u", "number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			class, rule := classify(tc.code, tc.entry)
			if class != tc.class || rule != tc.rule {
				t.Errorf("classify(%s, %s) = %s by %s, want %s by %s", tc.code, tc.entry, class, rule, tc.class, tc.rule)
			}
		})
	}
}

// TestRunOnASmallPackage builds a package database with the sqlite3 shell
// and checks the table written from it, twice, for identical bytes.
func TestRunOnASmallPackage(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		testenv.Unavailable(t, "sqlite3 is not installed (apt-get install sqlite3); .ci/run installs it")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	const schema = `
CREATE TABLE province (code TEXT, name TEXT);
CREATE TABLE city (code TEXT, name TEXT, provinceCode TEXT);
CREATE TABLE area (code TEXT, name TEXT, cityCode TEXT, provinceCode TEXT);
CREATE TABLE street (code TEXT, name TEXT, areaCode TEXT);
CREATE TABLE village (code TEXT, name TEXT, streetCode TEXT);
INSERT INTO province VALUES ('23', '黑龙江省');
INSERT INTO city VALUES ('2301', '哈尔滨市', '23');
INSERT INTO area VALUES ('230102', '道里区', '2301', '23');
INSERT INTO street VALUES ('230102001', '兆麟街道', '230102');
INSERT INTO village VALUES ('230102001002', '索菲亚社区居委会', '230102001'), ('230102001001', '省报社社区居委会', '230102001'), ('230102001201', '"某"村', '230102001');
`
	cmd := exec.Command("sqlite3", filepath.Join(dir, "dist", "data.sqlite"))
	cmd.Stdin = strings.NewReader(schema)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	var outputs [2][]byte
	for i := range outputs {
		out := filepath.Join(dir, "out.tsv.gz")
		if err := run(dir, out, io.Discard); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outputs[i] = b
	}
	if !bytes.Equal(outputs[0], outputs[1]) {
		t.Error("two runs wrote different bytes")
	}
	zr, err := gzip.NewReader(bytes.NewReader(outputs[0]))
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")[1:]
	want := []string{
		"23\t黑龙江省\t\t",
		"2301\t哈尔滨市\t\t",
		"230102\t道里区\t\t",
		"230102001\t兆麟街道\t\t",
		"230102001001\t省报社社区居委会\tu\td",
		"230102001002\t索菲亚社区居委会\tu\td",
		"230102001201\t\"某\"村\tr\td",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// A committee without its township is refused.
	cmd = exec.Command("sqlite3", filepath.Join(dir, "dist", "data.sqlite"), "INSERT INTO village VALUES ('230102009001', '孤儿社区', '230102009')")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	if err := run(dir, filepath.Join(dir, "bad.tsv.gz"), io.Discard); err == nil || !strings.Contains(err.Error(), "no parent 230102009") {
		t.Errorf("orphan committee: %v", err)
	}
}
