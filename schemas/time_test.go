package schemas

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestDecodeTimeIsRFC3339: the event time is RFC 3339 as JSON Schema's
// date-time has it. time.Parse alone also takes a comma before the
// fraction and a zone offset of +24:00; such a time cannot be written back
// (time.Time.MarshalJSON refuses it), so the hub could not store the
// event's history or merge state and the partition would stall instead of
// the event going to the DLQ. What is accepted reads back as itself once
// written back.
func TestDecodeTimeIsRFC3339(t *testing.T) {
	base := env("tax", "tax.business_deregistered", validID, `{"business_id":"91350100M000100Y43"}`)
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
			ev, err := Decode(Input{Topic: Topic(Tax), Key: []byte(validID), Value: []byte(value), Now: fixedNow})
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
