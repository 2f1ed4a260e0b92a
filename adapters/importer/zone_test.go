package importer

import (
	"encoding/json"
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

// TestDateCellOfAnInstant: a date column given a date and time with an
// offset (exporters write instants in UTC, as JavaScript's toISOString
// does) takes the date China's clocks showed at that instant, as the
// row's time column and pophub cdc read it: a death at 00:30 on 1 March
// in Harbin, exported as 2026-02-28T16:30:00Z, died on 1 March. However a
// layout spells the offset (+00, +00:00, Z). A date and time without an
// offset keeps the date it shows, and so does one with a zone
// abbreviation Go does not know (Java's Date.toString writes China's time
// as CST), which is a wall time too.
func TestDateCellOfAnInstant(t *testing.T) {
	id := "110101198003076638" // born 1980, before every date of death below
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, schemas.CST())
	for _, tc := range []struct{ layout, cell, want string }{
		{"", "2026-03-01T00:30:00+08:00", "2026-03-01"},
		{"", "2026-02-28T16:30:00Z", "2026-03-01"},
		{"", "2026-02-28T16:30:00.000Z", "2026-03-01"},
		{"", "1988-05-31T15:00:00Z", "1988-06-01"},      // midnight on China's clocks, +09:00 that summer
		{"", "1988-06-01T00:00:00+09:00", "1988-06-01"}, // the same instant
		{"", "2026-02-28 16:30:00", "2026-02-28"},       // a wall time keeps the date it shows
		{"", "2026-02-28", "2026-02-28"},
		{"2006-01-02 15:04:05Z07:00", "2026-02-28 17:30:00+01:00", "2026-03-01"},
		{"2006-01-02 15:04:05Z07:00", "2026-02-28 16:30:00Z", "2026-03-01"},
		{"2006-01-02 15:04:05-07:00", "2026-02-28 16:30:00+00:00", "2026-03-01"}, // Python's str(datetime) of a UTC time
		{"2006-01-02 15:04:05-07", "2026-02-28 16:30:00+00", "2026-03-01"},       // PostgreSQL's COPY of a timestamptz, TimeZone UTC
		{"2006-01-02 15:04:05-07", "2026-03-01 00:30:00+08", "2026-03-01"},
		{"Mon Jan 02 15:04:05 MST 2006", "Sun Mar 01 20:00:00 CST 2026", "2026-03-01"},
		{"Mon Jan 02 15:04:05 MST 2006", "Sat Feb 28 16:30:00 UTC 2026", "2026-03-01"},
		{"Mon Jan 02 15:04:05 MST 2006", "Sat Feb 28 16:30:00 GMT 2026", "2026-03-01"},
	} {
		p := deathPlan(t, "", tc.layout)
		got := p.mapRow(2, []string{id, "2026-03-01T21:00:00+08:00", "D-1", tc.cell}, nil, now)
		if got.rej != nil {
			t.Fatalf("%s rejected: %s", tc.cell, got.rej)
		}
		if d := dataOf(t, got.value)["date_of_death"]; d != tc.want {
			t.Errorf("layout %q: 死亡日期 %s sent as date_of_death %v, want %s", tc.layout, tc.cell, d, tc.want)
		}
	}
}

// TestTimeCellWithChinasAbbreviation: a time column in Java's
// Date.toString form, "Sun Mar 01 20:00:00 CST 2026", is 20:00 China
// time, not 20:00 UTC as Go reads an abbreviation it does not know.
func TestTimeCellWithChinasAbbreviation(t *testing.T) {
	p := deathPlan(t, "Mon Jan 02 15:04:05 MST 2006", "")
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, schemas.CST())
	for _, tc := range []struct{ cell, want string }{
		{"Sun Mar 01 20:00:00 CST 2026", "2026-03-01T20:00:00+08:00"},
		{"Sun Mar 01 12:00:00 UTC 2026", "2026-03-01T20:00:00+08:00"},
	} {
		got := p.mapRow(2, []string{"110101198003076638", tc.cell, "D-1", "2026-03-01"}, nil, now)
		if got.rej != nil {
			t.Fatalf("%s rejected: %s", tc.cell, got.rej)
		}
		var ev struct{ Time time.Time }
		if err := json.Unmarshal(got.value, &ev); err != nil {
			t.Fatal(err)
		}
		if want, _ := time.Parse(time.RFC3339, tc.want); !ev.Time.Equal(want) {
			t.Errorf("签发日期 %s: event time %s, want %s", tc.cell, ev.Time.Format(time.RFC3339), tc.want)
		}
	}
}

// deathPlan binds a death-certificate mapping, its time column 签发日期 and
// date column 死亡日期 read in the layouts given (the defaults for ""), to
// the header 死者身份证号, 签发日期, 证明书编号, 死亡日期.
func deathPlan(t *testing.T, timeLayout, dateLayout string) *plan {
	t.Helper()
	layout := func(l string) string {
		if l == "" {
			return ""
		}
		return `, layout: "` + l + `"`
	}
	m, err := ParseMapping([]byte(`source: health
type: death.certified
subject: 死者身份证号
time: {column: 签发日期` + layout(timeLayout) + `}
id: {key: 证明书编号}
data:
  date_of_death: {column: 死亡日期, kind: date` + layout(dateLayout) + `}
  certificate_no: 证明书编号
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPlan(m, []string{"死者身份证号", "签发日期", "证明书编号", "死亡日期"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
