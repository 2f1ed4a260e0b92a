package importer

import (
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
)

// TestDateAloneIsMidnightCST: a time cell with a date alone is midnight
// China time on that date, also in the summers of 1986–1991 (when the tz
// database's Asia/Shanghai kept daylight saving time, and the hub, which
// dates every change by its fixed UTC+08:00 day, would have dated it the
// day before), by default and with the example mapping's explicit zone.
func TestDateAloneIsMidnightCST(t *testing.T) {
	for _, zone := range []string{"", "timezone: Asia/Shanghai"} {
		m, err := ParseMapping([]byte(`
source: housing
type: {value: housing.property_registered}
subject: 身份证号
time: {column: 登记日期, ` + zone + `}
id: {key: 编号}
data_by_type:
  housing.property_registered:
    property_id: 单元号
    address_code: 区划
    acquired: {value: purchase}
`))
		if err != nil {
			t.Fatal(err)
		}
		p, err := newPlan(m, []string{"身份证号", "登记日期", "编号", "单元号", "区划"})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ cell, want string }{
			{"2026-03-01", "2026-03-01T00:00:00+08:00"},
			{"1988-06-01", "1988-06-01T00:00:00+08:00"},
			{"1990/7/15", "1990-07-15T00:00:00+08:00"},
			{"1991年5月1日", "1991-05-01T00:00:00+08:00"},
		} {
			row := []string{"11010519491231002X", tc.cell, "P1", "U1", "230102001001"}
			out := p.mapRow(2, row, nil, time.Now())
			if out.rej != nil {
				t.Fatalf("%q %s: rejected: %v", zone, tc.cell, out.rej)
			}
			ev, err := schemas.Decode(schemas.Input{Topic: p.topic, Key: out.key, Value: out.value, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.Time.Format(time.RFC3339); got != tc.want {
				t.Errorf("%q: time cell %q: event time %s, want %s", zone, tc.cell, got, tc.want)
			}
		}
	}
}
