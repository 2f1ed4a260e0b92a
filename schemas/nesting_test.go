package schemas

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// nested is a JSON array nested depth levels deep.
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// TestDecodeRejectsDeepNesting: a value nested deeper than encoding/json
// reads (10,000 arrays and objects) is valid JSON, so it must not be
// called not_json; the reject names the member that holds the nesting,
// and every way in (Decode's scanner, encoding/json, CheckEncoded) says
// the same.
func TestDecodeRejectsDeepNesting(t *testing.T) {
	const deep = "nested deeper than 10,000 levels"
	// A case with data is the event of env with that data, which
	// CheckEncoded is given as well; the others are values no Event
	// encodes to.
	event := func(data string) string { return env("marriage", "marriage.registered", validID, data) }
	extension := func(name string) string {
		return strings.Replace(event(`{}`), `"id"`, `"`+name+`":`+nested(10000)+`,"id"`, 1)
	}
	tests := []struct {
		name, data, value string
		reason, field     string
		detail            string
	}{
		{"data", nested(10000), "", ReasonInvalidData, "data", deep},
		{"data member", `{"spouse_id":"11010519491231002X","x":` + nested(9999) + `}`, "", ReasonInvalidData, "data", deep},
		// The envelope and data together at exactly the limit are read,
		// and judged as any data that is not an object.
		{"data at the limit", nested(9999), "", ReasonInvalidData, "data", "must be a JSON object"},
		{"an extension attribute", "", extension("trace"), ReasonNotCloudEvent, "trace", deep},
		{"a name holding an ID", "", extension(validID), ReasonNotCloudEvent, maskedName, deep},
		{"the value itself", "", nested(10001), ReasonNotCloudEvent, "", deep},
		// Past the depth encoding/json stops at, a value may still be cut
		// short or broken: that is not_json, as at any depth.
		{"cut short", "", strings.Repeat("[", 10001), ReasonNotJSON, "", "not a JSON document"},
		{"data cut short", "", `{"specversion":"1.0","data":` + strings.Repeat("[", 10001), ReasonNotJSON, "", "not a JSON document"},
		{"broken after the depth", "", `{"data":` + strings.Repeat("[", 10001) + `x garbage`, ReasonNotJSON, "", "not a JSON document"},
		{"two values", "", nested(10001) + " " + nested(1), ReasonNotJSON, "", "not a JSON document"},
	}
	paths := []struct {
		name   string
		decode func(in Input, data string) error
	}{
		{"Decode", func(in Input, _ string) error { _, err := Decode(in); return err }},
		{"decodeStd", func(in Input, _ string) error { _, err := decodeStd(in); return err }},
		{"CheckEncoded", func(in Input, data string) error {
			ev := Event{ID: "e-1", Source: Marriage, Type: MarriageRegistered, Subject: validID,
				Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.FixedZone("", 8*3600)), Data: []byte(data)}
			return CheckEncoded(&ev, in)
		}},
	}
	for _, tc := range tests {
		for _, p := range paths {
			value := tc.value
			if tc.data != "" {
				value = event(tc.data)
			} else if p.name == "CheckEncoded" {
				continue
			}
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				err := p.decode(Input{Value: []byte(value), Now: fixedNow}, tc.data)
				re, ok := errors.AsType[*RejectError](err)
				if !ok || re.Reason != tc.reason || re.Field != tc.field || !strings.Contains(re.Detail, tc.detail) {
					t.Fatalf("%v; want %s on %q saying %q", err, tc.reason, tc.field, tc.detail)
				}
				if strings.Contains(err.Error(), validID) {
					t.Errorf("error %q contains a citizen ID", err)
				}
			})
		}
	}
}
