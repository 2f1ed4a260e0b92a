package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

// TestDecodeTimeIsRFC3339: the event time is RFC 3339 as JSON Schema's
// date-time has it. time.Parse alone also takes a comma before the
// fraction and a zone offset of +24:00; such a time cannot be written back
// (time.Time.MarshalJSON refuses it), so the hub could not store the
// event's history or merge state and the partition would stall instead of
// the event going to the DLQ. What is accepted reads back as itself once
// written back.
func TestDecodeTimeIsRFC3339(t *testing.T) {
	// Born on the first day the hub takes, so that no time accepted here
	// lies before the subject's birth (TestEventTimeBeforeBirth).
	subject := withCheck("11010518500101001")
	base := env("tax", "tax.business_deregistered", subject, `{"business_id":"91350100M000100Y43"}`)
	tests := []struct {
		time string
		ok   bool
	}{
		{"2026-03-01T00:00:00+08:00", true},
		{"2026-03-01T00:00:00Z", true},
		{"2026-03-01T00:00:00-00:00", true},
		{"2026-03-01T00:00:00+23:59", true},
		{"2026-03-01T00:00:00.123456789123Z", true}, // finer than a nanosecond: truncated
		{"2026-03-01T00:00:00+24:00", false},
		{"2026-03-01T00:00:00,5Z", false},
		{"2026-03-01T00:00:00,5+08:00", false},
		{"2026-03-01T00:00:00+08:60", false},
		{"2016-12-31T23:59:60Z", false}, // a leap second: Go's time cannot hold it
		{"2026-03-01T24:00:00Z", false},
		{"2026-03-01t00:00:00z", false},
		{"2026-03-01 00:00:00Z", false},
		{"2026-03-01T00:00Z", false},
		{"2026-03-01", false},
		// time.Parse reads its hour "15" as one digit or two; RFC 3339
		// and the envelope schema ask for two.
		{"2026-03-01T9:30:00+08:00", false},
		{"2026-03-01T9:30:00Z", false},
		{"2026-03-01T09:30:00+8:00", false},
		{"2026-03-01T09:30:00.+08:00", false},
		{"2026-03-01T09:30:00+08:00", true},
		// Not before 1850, as written nor as kept (in CST): an event kept
		// as 1849-12-31T09:00:00+08:00 could not be written back and
		// accepted again.
		{"1850-01-01T00:00:00+23:00", false},
		{"1850-01-01T00:00:00+08:01", false},
		{"1849-12-31T16:00:00Z", false},
		{"1850-01-01T00:00:00+08:00", true},
		{"1850-01-01T00:00:00Z", true},
		{"1850-01-01T00:00:00-12:00", true},
	}
	for _, tc := range tests {
		t.Run(tc.time, func(t *testing.T) {
			value := strings.Replace(base, "2026-03-01T00:00:00+08:00", tc.time, 1)
			ev, err := Decode(Input{Topic: Topic(Tax), Key: []byte(subject), Value: []byte(value), Now: fixedNow})
			if !tc.ok {
				re, isReject := err.(*RejectError)
				if !isReject || re.Reason != ReasonNotCloudEvent || re.Field != "time" {
					t.Fatalf("Decode = %v, want not_cloudevent on time", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			// Whatever is accepted can be written back: the hub stores the
			// time in history and merge state as JSON.
			if _, err := json.Marshal(struct{ T time.Time }{ev.Time}); err != nil {
				t.Errorf("accepted time does not encode: %v", err)
			}
			b, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Decode(Input{Value: b, Now: fixedNow})
			if err != nil || !again.Time.Equal(ev.Time) {
				t.Errorf("round trip: %v, %v", again.Time, err)
			}
		})
	}
}

// TestEventTimeBeforeBirth: a change of the subject's life takes effect
// after the birth. A time whose date in China Standard Time lies more
// than a year before the birth date in the subject's citizen ID, or is a
// placeholder before it (1970-01-01: the Unix epoch, which systems write
// for a time they do not know; 1900-01-01) even within the year, is
// refused as invalid_data on time, as the dates of the subject's life in
// data are; Decode, decodeStd and CheckEncoded agree. A registration at
// the epoch counted a person born in 2000 in every statistic since 1970.
func TestEventTimeBeforeBirth(t *testing.T) {
	born1990 := citizenid.ID(withCheck("23010219900307001"))    // born 1990-03-07
	bornMay1970 := citizenid.ID(withCheck("23010219700515001")) // born 1970-05-15
	bornJan1970 := citizenid.ID(withCheck("23010219700101001")) // born 1970-01-01
	tests := []struct {
		name    string
		subject citizenid.ID
		time    string
		refused string // in the detail, or "" for accepted
	}{
		{"Unix epoch", born1990, "1970-01-01T00:00:00Z", "placeholder"},
		{"Unix epoch on China's clocks", born1990, "1970-01-01T00:00:00+08:00", "placeholder"},
		{"midnight of 1970-01-01 in China, written in UTC", born1990, "1969-12-31T16:00:00Z", "placeholder"},
		{"1900-01-01", born1990, "1900-01-01T00:00:00+08:00", "placeholder"},
		{"1850", born1990, "1850-01-01T00:00:00+08:00", "more than a year before"},
		{"a year and a day before birth", born1990, "1989-03-06T12:00:00+08:00", "more than a year before"},
		{"a year and a day before birth in China, written in UTC", born1990, "1989-03-06T15:59:59Z", "more than a year before"},
		{"a year before birth in China, written in UTC", born1990, "1989-03-06T16:00:00Z", ""},
		{"a year before birth", born1990, "1989-03-07T00:00:00+08:00", ""},
		{"the day of birth", born1990, "1990-03-07T09:30:00+08:00", ""},
		{"Unix epoch, born within the year after it", bornMay1970, "1970-01-01T00:00:00Z", "placeholder"},
		{"the epoch's day in UTC, the next in China, born within the year after it", bornMay1970, "1970-01-01T20:00:00Z", ""},
		{"another day of January 1970, born within the year after it", bornMay1970, "1970-01-02T00:00:00+08:00", ""},
		{"Unix epoch, born on its day", bornJan1970, "1970-01-01T00:00:00Z", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339, tc.time)
			if err != nil {
				t.Fatal(err)
			}
			ev := Event{ID: "ps-1", Source: PublicSecurity, Type: HukouRegistered, Subject: tc.subject, Time: at,
				Payload: &HukouRegisteredData{Name: "李四", Gender: "1", BirthDate: tc.subject.BirthDate().Format(time.DateOnly),
					Ethnicity: "01", AddressCode: "230103001001", HouseholdID: "H9", Reason: "birth"}}
			got := checkedAlike(t, ev)
			value, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, std := decodeStd(Input{Topic: Topic(PublicSecurity), Key: []byte(tc.subject), Value: value, Now: fixedNow}); !sameReject(got, std) {
				t.Fatalf("Decode says %v, decodeStd says %v", got, std)
			}
			if tc.refused == "" {
				if got != nil {
					t.Fatalf("Decode = %v, want valid", got)
				}
				return
			}
			re, ok := errors.AsType[*RejectError](got)
			if !ok || re.Reason != ReasonInvalidData || re.Field != "time" ||
				!strings.Contains(re.Detail, tc.refused) || !strings.Contains(re.Detail, "the subject's birth date (digits 7–14 of the citizen ID)") {
				t.Fatalf("Decode = %v, want invalid_data on time: …%s… the subject's birth date (digits 7–14 of the citizen ID)", got, tc.refused)
			}
			if strings.Contains(re.Error(), string(tc.subject)) || strings.Contains(re.Error(), string(tc.subject[6:14])) {
				t.Errorf("error %q contains the citizen ID or its birth date", re)
			}
		})
	}
}

// TestEventTimeBeforeBirthEveryType: no type of the catalogue is exempt,
// since each is a change to the subject's own life: a documented example
// of each, at a time a year and a day before the subject's birth date, is
// refused on time, whatever its data.
func TestEventTimeBeforeBirthEveryType(t *testing.T) {
	early := time.Date(1988, 12, 31, 12, 0, 0, 0, CST()) // validID: born 1990-01-01
	seen := map[Type]bool{}
	for _, f := range schemaFixtures(t) {
		if f.topic == "" {
			continue
		}
		ev, err := Decode(Input{Topic: f.topic, Value: []byte(f.value(plainQuote, "")), Now: fixedNow})
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if seen[ev.Type] {
			continue
		}
		seen[ev.Type] = true
		t.Run(string(ev.Type), func(t *testing.T) {
			ev.Data, ev.Time = nil, early
			err := checkedAlike(t, ev)
			if re, ok := errors.AsType[*RejectError](err); !ok || re.Reason != ReasonInvalidData || re.Field != "time" {
				t.Errorf("Decode = %v, want invalid_data on time", err)
			}
		})
	}
	if len(seen) != len(catalogue) {
		t.Errorf("examples of %d types, the catalogue has %d", len(seen), len(catalogue))
	}
}
