package importer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// TestEducationCodes: with the shipped education mapping, 学历层次 takes
// the codes of GB/T 4658, their full names and the short names department
// systems use; a short name stands for the stage in an enrolment and for
// graduating from it in a graduation. A value of none of these is rejected
// with a detail that names the code table, not a value map the field does
// not have.
func TestEducationCodes(t *testing.T) {
	m, err := ExampleMapping(schemas.Education)
	if err != nil {
		t.Fatal(err)
	}
	header := []string{"学籍变动", "学生身份证号", "变动时间", "学籍号", "学校名称", "学历层次", "学校所在地区划代码", "入学日期", "毕业日期", "毕业证书编号", "更新时间"}
	p, err := newPlan(m, header)
	if err != nil {
		t.Fatal(err)
	}
	const (
		table = "data.level (column 学历层次): value is not a name or code of the education table (GB/T 4658)"
		vague = "data.level (column 学历层次): value is a short name that stands for several codes of the education table (GB/T 4658) in this event type: write the full name or the code"
	)
	tests := []struct {
		name   string
		change string // 入学 (enrolled) or 毕业 (graduated)
		level  string
		want   string // the event's level, or the reject
	}{
		{"code", "毕业", "21", "21"},
		{"full name", "毕业", "大学本科毕业", "21"},
		{"full stage name", "入学", "小学教育", "80"},
		{"小学 enrolled", "入学", "小学", "80"},
		{"小学 graduated", "毕业", "小学", "81"},
		{"初中 graduated", "毕业", "初中", "71"},
		{"高中 enrolled", "入学", "高中", "60"},
		{"中专 graduated", "毕业", "中专", "41"},
		{"中职 enrolled", "入学", "中职", "40"},
		{"大专 graduated", "毕业", "大专", "31"},
		{"专科 enrolled", "入学", "专科", "30"},
		{"本科 enrolled", "入学", "本科", "20"},
		{"大学本科 graduated", "毕业", "大学本科", "21"},
		{"硕士 graduated", "毕业", "硕士", "14"},
		{"硕士研究生 enrolled", "入学", "硕士研究生", "10"},
		{"博士研究生 graduated", "毕业", "博士研究生", "11"},
		{"中职 graduated: 中专, 职高 or 技校", "毕业", "中职", "reject: " + vague},
		{"研究生 graduated: a doctorate or a master's", "毕业", "研究生", "reject: " + vague},
		{"not a level", "入学", "幼儿园", "reject: " + table},
		{"not a code", "毕业", "99", "reject: " + table},
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row := []string{tc.change, "230102199001011230", "2024-07-01 09:00:00", "X-1", "示例学校", tc.level, "230102",
				"2024-09-01", "2024-07-01", "C-1", "2024-07-01 09:00:00"}
			got := p.mapRow(i+2, row, nil, now)
			if got.rej != nil {
				if r := "reject: " + got.rej.Field + " (column " + got.rej.Column + "): " + got.rej.Detail; r != tc.want {
					t.Errorf("got %s (%s)\nwant %s", r, got.rej.Reason, tc.want)
				}
				if got.rej.Reason != ReasonUnmappedValue {
					t.Errorf("reason %s, want %s", got.rej.Reason, ReasonUnmappedValue)
				}
				if strings.Contains(got.rej.Detail, tc.level) {
					t.Errorf("detail %q quotes the cell", got.rej.Detail)
				}
				return
			}
			var ev struct {
				Data struct {
					Level string `json:"level"`
				} `json:"data"`
			}
			if err := json.Unmarshal(got.value, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Data.Level != tc.want {
				t.Errorf("level %q, want %s", ev.Data.Level, tc.want)
			}
		})
	}
}

// TestCodesRejectNamesTheTable: every code table's reject names the table
// and its standard; a value map's reject still speaks of the value map.
func TestCodesRejectNamesTheTable(t *testing.T) {
	m, err := ExampleMapping(schemas.PublicSecurity)
	if err != nil {
		t.Fatal(err)
	}
	header := []string{"业务类型", "公民身份号码", "业务办理时间", "业务流水号", "姓名", "性别", "出生日期", "民族", "住址区划代码", "户号", "与户主关系", "登记原因", "迁出地区划代码", "迁移原因", "注销原因"}
	p, err := newPlan(m, header)
	if err != nil {
		t.Fatal(err)
	}
	row := func(gender, ethnicity, reason string) []string {
		return []string{"户口登记", "230102199001011230", "2024-07-01 09:00:00", "B-1", "张伟", gender, "19900101", ethnicity,
			"230102001001", "H-1", "户主", reason, "", "", ""}
	}
	tests := []struct {
		name  string
		row   []string
		field string // of the reject, or "" for none
		want  string // its detail
	}{
		{"short ethnicity name", row("男", "汉", "出生登记"), "", ""},
		{"gender", row("雄", "汉族", "出生登记"), "data.gender", "value is not a name or code of the gender table (GB/T 2261.1)"},
		{"ethnicity", row("1", "火星族", "出生登记"), "data.ethnicity", "value is not a name or code of the ethnicity table (GB 3304)"},
		{"value map", row("1", "01", "捡到的"), "data.reason", "value is not in the value map"},
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := p.mapRow(i+2, tc.row, nil, now)
			switch {
			case got.rej == nil && tc.field != "":
				t.Fatalf("accepted, want %s: %s", tc.field, tc.want)
			case got.rej == nil:
				return
			case tc.field == "":
				t.Fatalf("rejected: %s", got.rej)
			}
			if got.rej.Reason != ReasonUnmappedValue || got.rej.Field != tc.field || got.rej.Detail != tc.want {
				t.Errorf("got %s: %s: %s\nwant %s: %s: %s", got.rej.Reason, got.rej.Field, got.rej.Detail, ReasonUnmappedValue, tc.field, tc.want)
			}
		})
	}
}

// TestGenderNames: with the shipped public-security mapping, 性别 takes
// the codes of GB/T 2261.1, the standard's names (男性, 女性, 未说明的性别)
// and the usual short names 男 and 女.
func TestGenderNames(t *testing.T) {
	m, err := ExampleMapping(schemas.PublicSecurity)
	if err != nil {
		t.Fatal(err)
	}
	header := []string{"业务类型", "公民身份号码", "业务办理时间", "业务流水号", "姓名", "性别", "出生日期", "民族", "住址区划代码", "户号", "与户主关系", "登记原因", "迁出地区划代码", "迁移原因", "注销原因"}
	p, err := newPlan(m, header)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ cell, want string }{
		{"1", "1"},
		{"男", "1"},
		{"男性", "1"},
		{"女", "2"},
		{"女性", "2"},
		{"未说明的性别", "9"},
		{"未知的性别", "0"},
		{"男士", ""},
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, tc := range tests {
		t.Run(tc.cell, func(t *testing.T) {
			row := []string{"户口登记", "230102199001011230", "2024-07-01 09:00:00", "B-1", "张伟", tc.cell, "19900101", "汉族",
				"230102001001", "H-1", "户主", "出生登记", "", "", ""}
			got := p.mapRow(i+2, row, nil, now)
			if tc.want == "" {
				if got.rej == nil || got.rej.Reason != ReasonUnmappedValue {
					t.Fatalf("%s: %+v, want unmapped_value", tc.cell, got.rej)
				}
				return
			}
			if got.rej != nil {
				t.Fatalf("%s rejected: %s: %s", tc.cell, got.rej.Reason, got.rej.Detail)
			}
			var ev struct {
				Data struct {
					Gender string `json:"gender"`
				} `json:"data"`
			}
			if err := json.Unmarshal(got.value, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Data.Gender != tc.want {
				t.Errorf("gender %q, want %s", ev.Data.Gender, tc.want)
			}
		})
	}
}
