package cdc

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// TestDateOfTimestamp: a date field read from a timestamptz takes the
// date China's clocks showed at that instant. A server on China's time
// (TimeZone Asia/Shanghai) keeps 1988-06-01, in that summer's daylight
// saving, as 1988-06-01 00:00:00+09, which the stream (TimeZone UTC)
// prints as 1988-05-31 15:00:00+00; a fixed +08:00 would send the day
// before, and the hub would flag the person's ID as not matching the
// birth date. A timestamp without a zone keeps the date it shows.
func TestDateOfTimestamp(t *testing.T) {
	m := Mapping{CitizenID: "citizen_id", Key: []string{"person_id"},
		Update: &Operation{Type: schemas.IdentityCorrected, Data: map[string]string{"birth_date": "birth_date"}}}
	p, err := m.compile(schemas.PublicSecurity, "persons")
	if err != nil {
		t.Fatal(err)
	}
	first := "110101198806010" + "01"
	id := first + string(citizenid.CheckChar(first))
	for _, tc := range []struct{ pg, want string }{
		{"1988-05-31 15:00:00+00", "1988-06-01"}, // 1988-06-01 00:00 Asia/Shanghai (+09, DST)
		{"1990-12-31 16:00:00+00", "1991-01-01"}, // 1991-01-01 00:00 Asia/Shanghai (+08)
		{"1988-06-01 00:00:00", "1988-06-01"},    // a timestamp: the date it shows
		{"1988-06-01 23:30:00", "1988-06-01"},
		{"1988-06-01", "1988-06-01"},
	} {
		r := row{"person_id": {text: "9"}, "citizen_id": {text: id}, "birth_date": {text: tc.pg}}
		ev, _, err := p.event(change{kind: opUpdate, row: r, version: 7, commit: time.Now()})
		if err != nil {
			t.Fatalf("event: %v", err)
		}
		var d struct {
			BirthDate string `json:"birth_date"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.BirthDate != tc.want {
			t.Errorf("%q sent as birth_date %q, want %q", tc.pg, d.BirthDate, tc.want)
		}
	}
}
