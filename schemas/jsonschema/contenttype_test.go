package jsonschema

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pophub/pophub/schemas"
)

// TestEnvelopeContentTypeAgrees: the envelope schema and the decoder take
// the same datacontenttype values: application/json with or without
// parameters, and null, which the CloudEvents JSON format reads as an
// absent attribute (as the decoder reads null for every attribute); both
// refuse other media types and control characters, a line break above all
// (it would split a header line where the type is copied to one).
func TestEnvelopeContentTypeAgrees(t *testing.T) {
	v := validator(t)
	tests := []struct {
		contentType any // a string, or nil for null
		ok          bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"application/json;charset=UTF-8", true},
		{nil, true},
		{"application/xml", false},
		{"application/jsonx", false},
		{"", false},
		{"application/json;\ncharset=utf-8", false},
		{"application/json;\rcharset=utf-8", false},
		{"application/json;\tcharset=utf-8", false},
		{"application/json; charset=utf-8\u0000", false},
		{"application/json; charset=utf-8\u0085", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+q", tc.contentType), func(t *testing.T) {
			ct, _ := json.Marshal(tc.contentType)
			value := []byte(strings.Replace(string(envelope(schemas.HukouCancelled, []byte(`{"reason":"death"}`))),
				`"data":`, `"datacontenttype":`+string(ct)+`,"data":`, 1))
			schemaErr := v.ValidateEvent(value)
			_, goErr := schemas.Decode(schemas.Input{Value: value, Now: decodeNow})
			if (schemaErr == nil) != tc.ok || (goErr == nil) != tc.ok {
				t.Fatalf("%s: schema: %v, decoder: %v; want both to accept: %v", value, schemaErr, goErr, tc.ok)
			}
			var re *schemas.RejectError
			if !tc.ok && (!asReject(goErr, &re) || re.Reason != schemas.ReasonNotCloudEvent || re.Field != "datacontenttype") {
				t.Errorf("decoder: %v, want not_cloudevent on datacontenttype", goErr)
			}
		})
	}
}
