package schemas

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDecodeTimeInChinaStandardTime: whatever offset a department writes,
// the decoded event's time is the same instant, with its sub-second digits
// to the microsecond, in the fixed +08:00 zone, so that history, provenance
// and notifications read the same on every store. Summer 1988 is the
// check that the zone is fixed: Asia/Shanghai would give +09:00 then.
func TestDecodeTimeInChinaStandardTime(t *testing.T) {
	const subject = "11010519491231002X" // born before every time here
	base := env("tax", "tax.business_deregistered", subject, `{"business_id":"91350100M000100Y43"}`)
	tests := []struct {
		sent, want string
	}{
		{"2026-02-28T16:00:00Z", "2026-03-01T00:00:00+08:00"},
		{"2026-03-01T00:00:00+08:00", "2026-03-01T00:00:00+08:00"},
		{"2026-02-28T11:00:00-05:00", "2026-03-01T00:00:00+08:00"},
		{"2026-02-28T16:00:00-00:00", "2026-03-01T00:00:00+08:00"},
		{"2026-02-28T16:00:00.123456789Z", "2026-03-01T00:00:00.123456+08:00"},
		{"2026-02-28T16:00:00.5Z", "2026-03-01T00:00:00.5+08:00"},
		{"1988-07-01T01:00:00Z", "1988-07-01T09:00:00+08:00"},
	}
	for _, tc := range tests {
		t.Run(tc.sent, func(t *testing.T) {
			value := strings.Replace(base, "2026-03-01T00:00:00+08:00", tc.sent, 1)
			ev, err := Decode(Input{Topic: Topic(Tax), Key: []byte(subject), Value: []byte(value), Now: fixedNow})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := ev.Time.Format(time.RFC3339Nano); got != tc.want {
				t.Errorf("Decode: time %s, want %s", got, tc.want)
			}
			if ev.Time.Location() != CST() {
				t.Errorf("Decode: time in %v, want schemas.CST()", ev.Time.Location())
			}
			// The reference decoder agrees.
			std, err := decodeStd(Input{Topic: Topic(Tax), Key: []byte(subject), Value: []byte(value), Now: fixedNow})
			if err != nil {
				t.Fatalf("decodeStd: %v", err)
			}
			if got := std.Time.Format(time.RFC3339Nano); got != tc.want {
				t.Errorf("decodeStd: time %s, want %s", got, tc.want)
			}
			// What the hub writes reads back unchanged.
			b, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), `"time":"`+tc.want+`"`) {
				t.Errorf("Encode: %s, want time %s", b, tc.want)
			}
		})
	}
}

// TestCSTIsFixed: the zone is a fixed +08:00 at every date, and a time in
// it reads back from its RFC 3339 text as the same value.
func TestCSTIsFixed(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1988, 7, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1991, 8, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		in := at.In(CST())
		if _, off := in.Zone(); off != 8*3600 {
			t.Errorf("%s in CST(): offset %+d, want +28800", at.Format(time.DateOnly), off)
		}
		// Where the local zone is +08:00 at that instant, time.Time's
		// UnmarshalJSON gives time.Local instead of a nameless zone.
		if _, local := at.In(time.Local).Zone(); local == 8*3600 {
			continue
		}
		var back time.Time
		if b, err := in.MarshalJSON(); err != nil || back.UnmarshalJSON(b) != nil || !reflect.DeepEqual(back, in) {
			t.Errorf("%s in CST() does not read back from its JSON as the same value: %v", in.Format(time.RFC3339Nano), back)
		}
	}
}

// TestZone: a mapping's time zone name gives CST for no name and for the
// names of China's time, so that a date alone stays that date in the
// summers of 1986–1991, when the tz database gives Asia/Shanghai +09:00;
// other names load as usual, and a name that does not load is an error.
func TestZone(t *testing.T) {
	summer := time.Date(1988, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		offset int // at summer, in seconds; -1 for an error
		isCST  bool
	}{
		{"", 8 * 3600, true},
		{"Asia/Shanghai", 8 * 3600, true},
		{"PRC", 8 * 3600, true},
		{"Asia/Chongqing", 8 * 3600, true},
		{"Asia/Harbin", 8 * 3600, true},
		{"UTC", 0, false},
		{"Mars/Olympus", -1, false},
	} {
		loc, err := Zone(tc.name)
		if tc.offset < 0 {
			if err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("Zone(%q): %v, want an error naming it", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Zone(%q): %v", tc.name, err)
			continue
		}
		if _, off := summer.In(loc).Zone(); off != tc.offset {
			t.Errorf("Zone(%q) in the summer of 1988: offset %+d, want %+d", tc.name, off, tc.offset)
		}
		if (loc == CST()) != tc.isCST {
			t.Errorf("Zone(%q) is CST(): %v, want %v", tc.name, loc == CST(), tc.isCST)
		}
	}
}

func TestVersionedEventID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"housing-01c210f7929d96280b230790-8000000000000002", true},
		{"social_insurance-01c210f7929d96280b230790-7fffffffffffffff", true},
		{"housing-33bb252b595ae119f2634f6a", false},
		{"-01c210f7929d96280b230790-8000000000000002", false},
		{"housing-01c210f7929d96280b230790-800000000000000G", false},
		{"housing-01C210F7929D96280B230790-8000000000000002", false},
		{"housing-01c210f7929d96280b23079-08000000000000002", false},
		{"emp-2026-000123", false},
	} {
		if got := VersionedEventID(tc.id); got != tc.want {
			t.Errorf("VersionedEventID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
