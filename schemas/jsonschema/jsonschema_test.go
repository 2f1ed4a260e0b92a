package jsonschema

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/hub"
	"github.com/pophub/pophub/hub/merge"
	"github.com/pophub/pophub/schemas"
)

func validator(t *testing.T) *Validator {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatalf("compiling schemas: %v", err)
	}
	return v
}

// envelopeTime is the time of the events envelope builds.
const envelopeTime = "2026-01-01T00:00:00+08:00"

// envelope wraps data in a CloudEvent of type t.
func envelope(t schemas.Type, data []byte) []byte {
	b, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "x-1", "source": schemas.SourceOf(t), "type": t,
		"subject": "230102199001011230", "time": envelopeTime, "data": json.RawMessage(data)})
	return b
}

// TestEveryTypeHasASchema: the catalogue and the schema files list the
// same types.
func TestEveryTypeHasASchema(t *testing.T) {
	names, _ := fs.Glob(FS(), "*.*.schema.json")
	var files []string
	for _, n := range names {
		files = append(files, strings.TrimSuffix(n, ".schema.json"))
	}
	sort.Strings(files)
	var types []string
	for _, typ := range schemas.Types() {
		types = append(types, string(typ))
	}
	if strings.Join(files, ",") != strings.Join(types, ",") {
		t.Fatalf("schema files %v\ncatalogue  %v", files, types)
	}
}

// TestExamplesAgree: every documented example validates against its
// schema, inside the envelope schema, and is accepted by the Go decoder.
func TestExamplesAgree(t *testing.T) {
	v := validator(t)
	for _, typ := range schemas.Types() {
		examples, err := Examples(typ)
		if err != nil || len(examples) == 0 {
			t.Errorf("%s: no examples (%v)", typ, err)
			continue
		}
		for i, ex := range examples {
			if err := v.ValidateData(typ, ex); err != nil {
				t.Errorf("%s example %d fails its schema: %v", typ, i, err)
			}
			env := envelope(typ, ex)
			if err := v.ValidateEvent(env); err != nil {
				t.Errorf("%s example %d fails the envelope schema: %v", typ, i, err)
			}
			if _, err := schemas.Decode(schemas.Input{Value: env}); err != nil {
				t.Errorf("%s example %d rejected by the decoder: %v", typ, i, err)
			}
		}
	}
}

// TestInvalidDataRejectedByBoth: the schemas and the Go decoder reject the
// same bad data, and the decoder names the field.
func TestInvalidDataRejectedByBoth(t *testing.T) {
	v := validator(t)
	tests := []struct {
		name  string
		typ   schemas.Type
		data  string
		field string
	}{
		{"missing required", schemas.HukouCancelled, `{}`, "data.reason"},
		{"bad enum", schemas.HukouCancelled, `{"reason":"vanished"}`, "data.reason"},
		{"bad date", schemas.ContractEnded, `{"contract_id":"C1","end":"2025-13-01"}`, "data.end"},
		{"unknown field", schemas.ContractEnded, `{"contract_id":"C1","end":"2025-01-01","note":"x"}`, "data.note"},
		{"bad address code", schemas.PropertyRegistered, `{"property_id":"P","address_code":"2301","acquired":"gift"}`, "data.address_code"},
		{"bad region code", schemas.InsuranceTransferred, `{"from_region":"23010","to_region":"230602"}`, "data.from_region"},
		{"bad USCC alphabet", schemas.BusinessDeregistered, `{"business_id":"91230102MA1B2C3DIO"}`, "data.business_id"},
		{"bad spouse id", schemas.MarriageRegistered, `{"spouse_id":"23010219920202124"}`, "data.spouse_id"},
		{"empty insurances", schemas.ContributionRecorded, `{"month":"2024-05","region":"230102","insurances":[]}`, "data.insurances"},
		{"repeated insurance", schemas.ContributionRecorded, `{"month":"2024-05","region":"230102","insurances":["pension","pension"]}`, "data.insurances"},
		{"bad month", schemas.ContributionRecorded, `{"month":"2024-5","region":"230102","insurances":["pension"]}`, "data.month"},
		{"empty correction", schemas.IdentityCorrected, `{}`, "data"},
		{"bad gender", schemas.IdentityCorrected, `{"gender":"M"}`, "data.gender"},
		{"bad ethnicity", schemas.IdentityCorrected, `{"ethnicity":"57"}`, "data.ethnicity"},
		{"wrong JSON type", schemas.InsuranceEnrolled, `{"scheme":"employee","insurances":"pension","region":"230102","start":"2024-01-01"}`, "data.insurances"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.ValidateData(tc.typ, []byte(tc.data)); err == nil {
				t.Errorf("schema accepts %s", tc.data)
			}
			_, err := schemas.Decode(schemas.Input{Value: envelope(tc.typ, []byte(tc.data))})
			var re *schemas.RejectError
			if err == nil || !asReject(err, &re) || re.Reason != schemas.ReasonInvalidData || re.Field != tc.field {
				t.Errorf("decoder: %v, want invalid_data on %s", err, tc.field)
			}
		})
	}
}

// TestEnvelopeMemberNamesAgree: the envelope schema (propertyNames) and
// the decoder accept the same member names: CloudEvents attribute names,
// lower-case and case-sensitive, so that a "Subject" or "Data" beside the
// real attribute is refused by both rather than read by one.
func TestEnvelopeMemberNamesAgree(t *testing.T) {
	v := validator(t)
	tests := []struct {
		member string
		ok     bool
	}{
		{`"traceparent":"00-abc-def-01"`, true},
		{`"partitionkey2":"x"`, true},
		{`"abcdefghijklmnopqrst":1`, true},
		{`"Subject":"11010519491231002X"`, false},
		{`"ſubject":"11010519491231002X"`, false},
		{`"Data":{"reason":"other"}`, false},
		{`"Time":"1999-01-01T00:00:00Z"`, false},
		{`"Id":"other-id"`, false},
		{`"\u0054ype":"hukou.registered"`, false},
		{`"data_base64":"AAAA"`, false},
		{`"abcdefghijklmnopqrstu":1`, false},
		{`"":1`, false},
	}
	for _, tc := range tests {
		t.Run(tc.member, func(t *testing.T) {
			value := []byte(strings.Replace(string(envelope(schemas.HukouCancelled, []byte(`{"reason":"death"}`))), `{`, `{`+tc.member+`,`, 1))
			schemaErr := v.ValidateEvent(value)
			_, goErr := schemas.Decode(schemas.Input{Value: value, Now: decodeNow})
			if (schemaErr == nil) != tc.ok || (goErr == nil) != tc.ok {
				t.Errorf("schema: %v, decoder: %v; want both to accept: %v", schemaErr, goErr, tc.ok)
			}
			if !tc.ok && schemas.ReasonOf(goErr) != schemas.ReasonNotCloudEvent {
				t.Errorf("decoder: %v, want not_cloudevent", goErr)
			}
		})
	}
}

// TestEnvelopeIDControlsAgree: the envelope schema's id pattern and the
// decoder refuse the same control characters, C0, DEL and C1 (U+0080–
// U+009F, NEL among them), and both take the characters around them.
func TestEnvelopeIDControlsAgree(t *testing.T) {
	v := validator(t)
	tests := []struct {
		id string
		ok bool
	}{
		{"e-1", true},
		{"a\u00a0b", true}, // no-break space, the first character after C1
		{"办理-1", true},
		{"a\u0000b", false},
		{"a\u001fb", false},
		{"a\u007fb", false},
		{"a\u0080b", false},
		{"a\u0085b", false},
		{"a\u009fb", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+q", tc.id), func(t *testing.T) {
			id, _ := json.Marshal(tc.id)
			value := []byte(strings.Replace(string(envelope(schemas.HukouCancelled, []byte(`{"reason":"death"}`))), `"id":"x-1"`, `"id":`+string(id), 1))
			schemaErr := v.ValidateEvent(value)
			_, goErr := schemas.Decode(schemas.Input{Value: value, Now: decodeNow})
			if (schemaErr == nil) != tc.ok || (goErr == nil) != tc.ok {
				t.Fatalf("%s: schema: %v, decoder: %v; want both to accept: %v", value, schemaErr, goErr, tc.ok)
			}
			var re *schemas.RejectError
			if !tc.ok && (!asReject(goErr, &re) || re.Reason != schemas.ReasonNotCloudEvent || re.Field != "id") {
				t.Errorf("decoder: %v, want not_cloudevent on id", goErr)
			}
		})
	}
}

func asReject(err error, re **schemas.RejectError) bool {
	r, ok := err.(*schemas.RejectError)
	*re = r
	return ok
}

// TestRecordsValidate: golden records, history entries and notifications
// the hub derives validate against their schemas.
func TestRecordsValidate(t *testing.T) {
	v := validator(t)
	var in []hub.Input
	for _, typ := range schemas.Types() {
		examples, _ := Examples(typ)
		for i, ex := range examples {
			b, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": string(typ) + "-" + string(rune('a'+i)), "source": schemas.SourceOf(typ),
				"type": typ, "subject": "230102199001011230", "time": "2025-01-01T00:00:00+08:00", "data": ex})
			ev, err := schemas.Decode(schemas.Input{Value: b})
			if err != nil {
				t.Fatal(err)
			}
			in = append(in, hub.Input{Event: ev})
		}
	}
	out := merge.Batch(nil, in, time.Now())
	for _, st := range out.States {
		b, _ := json.Marshal(st.Record())
		if err := v.ValidateRecord(b); err != nil {
			t.Errorf("record fails record.schema.json: %v\n%s", err, b)
		}
	}
	for _, h := range out.History {
		b, _ := json.Marshal(h.Change)
		if err := v.ValidateChange(b); err != nil {
			t.Errorf("history entry fails change.schema.json: %v", err)
		}
	}
	for _, o := range out.Outbox {
		if err := v.ValidateNotification(o.Body); err != nil {
			t.Errorf("notification on %s fails notification.schema.json: %v", o.Subject, err)
		}
	}
}

func TestOpenAPIPaths(t *testing.T) {
	got, err := OpenAPIPaths()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /healthz", "GET /metrics", "GET /readyz", "GET /stats", "GET /stats/{asset}", "GET /v1/admin/status", "GET /v1/eligibility/{citizen_id}", "GET /v1/persons",
		"GET /v1/persons/{citizen_id}", "GET /v1/persons/{citizen_id}/history", "GET /v1/policies", "GET /v1/stats/residence-permits", "GET /v1/stats/urban-rural",
		"POST /v1/admin/known-events", "POST /v1/events"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("operations %v, want %v", got, want)
	}
}

// TestReadmeEventExample: the event shown in the README is accepted by the
// decoder and the envelope schema.
func TestReadmeEventExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, block := range strings.Split(string(b), "```json")[1:] {
		block = strings.SplitN(block, "```", 2)[0]
		if strings.Contains(block, `"specversion"`) {
			example = block
			break
		}
	}
	if example == "" {
		t.Fatal("README shows no CloudEvent example")
	}
	if _, err := schemas.Decode(schemas.Input{Topic: "pop.events.employment", Value: []byte(example)}); err != nil {
		t.Errorf("README example rejected: %v", err)
	}
	if err := validator(t).ValidateEvent([]byte(example)); err != nil {
		t.Errorf("README example fails cloudevent.schema.json: %v", err)
	}
}

// TestPatternsCompileWithoutUnicodeFlag: every pattern holds characters
// of the Basic Multilingual Plane only, and no surrogate escapes, so that
// a department's validator compiles it alike with the ECMA-262 Unicode
// flag (ajv's default) and without it (older JavaScript validators, and
// engines that work on UTF-16 code units): beyond the BMP, a character
// class would hold a surrogate pair, which reads as a reversed range
// without the flag.
func TestPatternsCompileWithoutUnicodeFlag(t *testing.T) {
	names, err := fs.Glob(FS(), "*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(name string, v any)
	walk = func(name string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if p, ok := e.(string); ok && k == "pattern" {
					for _, r := range p {
						if r > 0xFFFF {
							t.Errorf("%s: pattern %q holds U+%X, beyond the BMP", name, p, r)
						}
					}
					if lower := strings.ToLower(p); strings.Contains(lower, `\ud8`) || strings.Contains(lower, `\ud9`) ||
						strings.Contains(lower, `\uda`) || strings.Contains(lower, `\udb`) || strings.Contains(lower, `\udc`) ||
						strings.Contains(lower, `\udd`) || strings.Contains(lower, `\ude`) || strings.Contains(lower, `\udf`) {
						t.Errorf("%s: pattern %q escapes a surrogate", name, p)
					}
					continue
				}
				walk(name, e)
			}
		case []any:
			for _, e := range v {
				walk(name, e)
			}
		}
	}
	for _, name := range names {
		b, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		walk(name, doc)
	}
	if len(names) < 20 {
		t.Errorf("only %d schemas", len(names))
	}
}
