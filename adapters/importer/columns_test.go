package importer

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// publicSecurityHeader is the header of the shipped public_security
// mapping, whose event types map data.reason to a column each.
var publicSecurityHeader = []string{"业务类型", "公民身份号码", "业务办理时间", "业务流水号", "姓名", "性别", "出生日期", "民族", "住址区划代码", "户号", "与户主关系", "登记原因", "迁出地区划代码", "迁移原因", "注销原因"}

// TestRejectNamesTheTypesColumn: when event types map one data field to
// different columns, a reject names the column of its line's type.
func TestRejectNamesTheTypesColumn(t *testing.T) {
	m := mustMapping(t, schemas.PublicSecurity)
	p, err := newPlan(m, publicSecurityHeader)
	if err != nil {
		t.Fatal(err)
	}
	row := func(typ, registered, migrated, cancelled string) []string {
		return []string{typ, "11010519491231002X", "2026-01-05 10:00:00", "B1", "张三", "男", "19491231", "汉族", "230102001001", "H1", "户主", registered, "230102001002", migrated, cancelled}
	}
	for _, tc := range []struct {
		name   string
		row    []string
		column string
	}{
		{"cancellation without its reason", row("户口注销", "出生登记", "就业", ""), "注销原因"},
		{"migration without its reason", row("户口迁移", "出生登记", "", "死亡"), "迁移原因"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.mapRow(2, tc.row, nil, time.Now())
			if got.rej == nil || got.rej.Field != "data.reason" || got.rej.Column != tc.column {
				t.Errorf("reject %v, want data.reason in column %s", got.rej, tc.column)
			}
		})
	}

	// A correction reusing a record's key names the columns that differ,
	// of its own type.
	file := tempFile(t, "hukou.csv")
	writeCSV(t, file, table{header: publicSecurityHeader, rows: [][]string{
		row("户口注销", "", "", "死亡"),
		row("户口注销", "", "", "其他"),
	}}, utf8Plain)
	rep, err := Run(context.Background(), Config{Source: schemas.PublicSecurity, File: file, Mapping: m, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rejects) != 1 || rep.Rejects[0].Reason != ReasonDuplicateID {
		t.Fatalf("rejects %v, want one duplicate_id", rep.Rejects)
	}
	if d := rep.Rejects[0].Detail; !strings.Contains(d, "cells (注销原因)") {
		t.Errorf("duplicate_id detail %q does not name 注销原因 as the column that differs", d)
	}
	os.Remove(rep.RejectsFile)
}

// TestOptionsThatWouldDoNothing: an option a field does not support —
// the subject takes only a column, the time a column, layout and time
// zone, the version no map, codes, kind or split — is refused when the
// mapping is read, naming the field and the option, and so are a column
// and a value together, and a time zone that does not load, on any field:
// else the mapping would read as if it did something.
func TestOptionsThatWouldDoNothing(t *testing.T) {
	const (
		base = "source: housing\ntype: housing.rental_ended\n"
		good = base + "subject: 身份证号\ntime: 时间\n"
	)
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"a default for the time", base + "subject: 身份证号\ntime: {column: 时间, default: \"2026-01-01 00:00:00\"}\n", "time: default is not an option of the time"},
		{"a value map for the subject", base + "subject: {column: 身份证号, map: {甲: \"11010519491231002X\"}}\ntime: 时间\n", "subject: map is not an option of the subject"},
		{"a kind for the subject", base + "subject: {column: 身份证号, kind: citizen_id}\ntime: 时间\n", "subject: kind is not an option of the subject"},
		{"a column and a value", good + "data: {lease_id: {column: 编号, value: L1}}\n", "data.lease_id: give column or value, not both"},
		{"a bad time zone on a data field", good + "data: {end: {column: 日期, kind: date, timezone: Mars/Olympus}}\n", `data.end: loading time zone "Mars/Olympus"`},
		{"a code table for the version", good + "id: {version: {column: 版本号, codes: gender}}\n", "id.version: codes is not an option of id.version"},
		{"a column and a value for the version", good + "id: {version: {column: 版本号, value: \"2\"}}\n", "id.version: give column or value, not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	// What the fields do support is accepted.
	for _, y := range []string{
		base + "subject: {column: 身份证号}\ntime: {column: 时间, layout: \"2006-01-02 15:04\", timezone: UTC}\n",
		good + "id: {version: {value: \"3\"}}\n",
		good + "id: {version: {column: 修改时间, default: \"2026-01-01 00:00\", layout: \"2006-01-02 15:04\", timezone: Asia/Shanghai}}\n",
		good + "data: {end: {column: 日期, kind: date, timezone: Asia/Shanghai}}\n",
	} {
		if _, err := ParseMapping([]byte(y)); err != nil {
			t.Errorf("mapping %q: %v", y, err)
		}
	}
}
