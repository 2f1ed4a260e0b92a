package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
	"github.com/pophub/pophub/schemas/codes"
	"github.com/pophub/pophub/schemas/region"
)

// unexpressible reports which rule of the decoder that JSON Schema cannot
// state explains why the decoder rejects data the schema accepts: a citizen
// ID's check character or calendar birth date, a credit code's check
// character, a date in the future, an end before its start, a
// contribution month after December of the year after at, the event's
// time (RFC 3339). It returns "" when none does, that is when the schema
// and the decoder really disagree.
func unexpressible(data map[string]any, at string, now time.Time) string {
	str := func(k string) string { s, _ := data[k].(string); return s }
	if m, err := time.Parse("2006-01", str("month")); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			t = t.In(schemas.CST())
			if m.Year() > t.Year()+1 {
				return "month: after the end of the year after the event's time"
			}
		}
	}
	if s := str("spouse_id"); s != "" {
		// The decoder parses spouse IDs as of the wall clock
		// (citizenid.ID.UnmarshalText), then validates them as of
		// Input.Now: both must pass.
		if _, err := citizenid.Parse(s); err != nil {
			return "spouse_id: " + err.Error()
		}
		if _, err := citizenid.ParseAt(s, now); err != nil {
			return "spouse_id: " + err.Error()
		}
	}
	for _, k := range []string{"employer_id", "business_id"} {
		if s := str(k); s != "" && !codes.ValidUSCC(s) {
			return k + ": credit code check character"
		}
	}
	today := citizenid.Today(now).Format(time.DateOnly)
	for _, k := range []string{"birth_date", "date_of_death"} {
		if s := str(k); s > today {
			return k + ": in the future"
		}
	}
	if start, end := str("start"), str("end"); start != "" && end != "" && end < start {
		return "end before start"
	}
	// The schema compares numbers exactly, the decoder as float64: 1e-400
	// is positive to one and zero to the other.
	if a, ok := data["area_m2"].(float64); ok && (a <= 0 || a > 100000) {
		return "area_m2: float64 precision"
	}
	return ""
}

// checkDataAgreement is the property FuzzDataAgreement and
// FuzzFieldAgreement check for one document of one type.
func checkDataAgreement(t *testing.T, v *Validator, typ schemas.Type, data []byte) {
	t.Helper()
	if !json.Valid(data) {
		return // the envelope would not be JSON: not a question about data
	}
	schemaErr := v.ValidateData(typ, data)
	ev, goErr := schemas.Decode(schemas.Input{Value: envelope(typ, data), Now: decodeNow})
	if goErr == nil {
		// Whatever the decoder accepts, written back canonically (fields
		// spelled as documented, empty optional ones omitted), passes the
		// schema.
		b, err := json.Marshal(ev.Payload)
		if err != nil {
			t.Fatalf("%s: encoding accepted data: %v", typ, err)
		}
		if err := v.ValidateData(typ, b); err != nil {
			t.Fatalf("%s: the decoder accepts %s, written back as %s, which fails the schema: %v", typ, data, b, err)
		}
		return
	}
	if schemaErr != nil {
		return // both reject
	}
	// The schema accepts, the decoder rejects: only for rules the schema
	// cannot express.
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: schema accepts %s, which is not an object: %v", typ, data, err)
	}
	switch schemas.ReasonOf(goErr) {
	case schemas.ReasonInvalidData:
		if unexpressible(m, envelopeTime, decodeNow) != "" || betweenFields(goErr) {
			return
		}
	case schemas.ReasonUnknownAddressCode:
		if unknownAddress(m, goErr) {
			return
		}
	case schemas.ReasonNotJSON:
		if mayBreakIJSON(data) {
			return
		}
	}
	t.Fatalf("%s: schema accepts %s, the decoder rejects it: %v", typ, data, goErr)
}

// unknownAddress reports whether goErr, an unknown_address_code reject,
// names a field of data holding a well-formed code the region table does
// not have: a table lookup the schema cannot express.
func unknownAddress(data map[string]any, goErr error) bool {
	var re *schemas.RejectError
	if !errors.As(goErr, &re) {
		return false
	}
	s, _ := data[strings.TrimPrefix(re.Field, "data.")].(string)
	return region.IsAddressCode(s) && !region.Known(s) || region.IsCountyCode(s) && !region.KnownRegion(s)
}

// mayBreakIJSON reports whether b may be what the decoder refuses as not
// JSON although encoding/json parses it: text that is not UTF-8, a lone
// UTF-16 surrogate escape, or a member name twice in one object (RFC
// 7493). A schema validator cannot see any of them: its JSON parser has
// already turned them into U+FFFD, or kept one of the two members.
func mayBreakIJSON(b []byte) bool {
	return !utf8.Valid(b) || bytes.Contains(bytes.ToLower(b), []byte(`\ud`)) || repeatsName(b)
}

// repeatsName reports whether a member name comes twice in one object of
// the JSON text b.
func repeatsName(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		names   map[string]bool
		wantKey bool
	}
	var stack []*frame // nil entries are arrays
	ended := func() {
		if n := len(stack); n > 0 && stack[n-1] != nil {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if n := len(stack); n > 0 && stack[n-1] != nil && stack[n-1].wantKey {
			if name, ok := tok.(string); ok {
				if stack[n-1].names[name] {
					return true
				}
				stack[n-1].names[name], stack[n-1].wantKey = true, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{names: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, nil)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			ended()
		default:
			ended()
		}
	}
}

// FuzzDataAgreement: for any data of any catalogue type, the JSON Schema
// and the decoder agree, up to the rules JSON Schema cannot express
// (unexpressible) and the decoder's leniencies, which a canonical
// re-encoding removes (empty or null optional fields, field names in
// another case).
func FuzzDataAgreement(f *testing.F) {
	types := schemas.Types()
	for i, typ := range types {
		examples, err := Examples(typ)
		if err != nil {
			f.Fatal(err)
		}
		for _, ex := range examples {
			f.Add(uint8(i), []byte(ex))
		}
	}
	seed := func(typ schemas.Type, data string) { f.Add(uint8(slices.Index(types, typ)), []byte(data)) }
	seed(schemas.IdentityCorrected, `{}`)
	seed(schemas.DeathCertified, `{"date_of_death":"2026-02-30","certificate_no":"x"}`)
	seed(schemas.PropertyRegistered, `{"property_id":"P","address_code":"230102001001","acquired":"gift","area_m2":1e-400}`)
	seed(schemas.RentalRegistered, `{"lease_id":"L","address_code":"230102001001","start":"2026-03-01","end":""}`)
	seed(schemas.HukouCancelled, `{"Reason":"death"}`)
	// Well-formed, but not in the region table: unknown_address_code.
	seed(schemas.PropertyRegistered, `{"property_id":"P","address_code":"210001000000","acquired":"purchase","area_m2":100000}`)
	seed(schemas.InsuranceTransferred, `{"from_region":"230102","to_region":"239999"}`)
	seed(schemas.DeathCertified, "{\"date_of_death\":\"2025-01-01\",\"certificate_no\":\"D\xff\"}")
	seed(schemas.DeathCertified, `{"date_of_death":"2025-01-01","certificate_no":"D\ud800"}`)
	seed(schemas.HukouCancelled, `{"reason":"other","reason":"death"}`)
	// Rules between data and the envelope: before the subject's birth,
	// after the event's time.
	seed(schemas.DeathCertified, `{"date_of_death":"1900-01-01","certificate_no":"D"}`)
	seed(schemas.ContributionRecorded, `{"month":"9999-12","region":"230102","insurances":["pension"]}`)
	v, err := NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ti uint8, data []byte) {
		checkDataAgreement(t, v, types[int(ti)%len(types)], data)
	})
}

// checkEventAgreement is FuzzEventAgreement's property for one value.
func checkEventAgreement(t *testing.T, v *Validator, value []byte) {
	t.Helper()
	if !json.Valid(value) {
		return
	}
	schemaErr := v.ValidateEvent(value)
	ev, goErr := schemas.Decode(schemas.Input{Value: value, Now: decodeNow})
	if goErr == nil {
		ev.Data = nil // re-encode the data canonically from the payload
		b, err := schemas.Encode(ev)
		if err != nil {
			t.Fatalf("encoding an accepted event: %v", err)
		}
		if err := v.ValidateEvent(b); err != nil {
			t.Fatalf("the decoder accepts %s, written back as %s, which fails the envelope schema: %v", value, b, err)
		}
		return
	}
	if schemaErr != nil {
		return
	}
	var env struct {
		Subject string          `json:"subject"`
		Time    string          `json:"time"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(value, &env); err != nil {
		t.Fatalf("schema accepts %s: %v", value, err)
	}
	switch schemas.ReasonOf(goErr) {
	case schemas.ReasonInvalidSubject:
		if _, err := citizenid.ParseAt(env.Subject, decodeNow); err == nil {
			t.Fatalf("schema accepts %s, the decoder rejects its subject: %v", value, goErr)
		}
		return
	case schemas.ReasonNotCloudEvent:
		if tm, err := time.Parse(time.RFC3339Nano, env.Time); err == nil && tm.After(decodeNow.Add(schemas.MaxClockSkew)) {
			return // in the future: not expressible
		}
		if tm, err := time.Parse(time.RFC3339Nano, env.Time); err == nil && tm.In(schemas.CST()).Year() < 1850 {
			return // written in 1850, kept (in CST) in 1849: not expressible
		}
	case schemas.ReasonInvalidData:
		if betweenFields(goErr) {
			return // a date of the data, or the time, before the subject's birth
		}
		var m map[string]any
		if json.Unmarshal(env.Data, &m) == nil && unexpressible(m, env.Time, decodeNow) != "" {
			return
		}
	case schemas.ReasonUnknownAddressCode:
		var m map[string]any
		if json.Unmarshal(env.Data, &m) == nil && unknownAddress(m, goErr) {
			return
		}
	case schemas.ReasonNotJSON:
		if mayBreakIJSON(value) {
			return
		}
	}
	t.Fatalf("schema accepts %s, the decoder rejects it: %v", value, goErr)
}

// FuzzEventAgreement: the envelope schema and the decoder agree on whole
// events, as FuzzDataAgreement on data.
func FuzzEventAgreement(f *testing.F) {
	for _, typ := range schemas.Types() {
		examples, err := Examples(typ)
		if err != nil {
			f.Fatal(err)
		}
		for _, ex := range examples {
			f.Add(envelope(typ, ex))
		}
	}
	for _, tm := range []string{"2020-01-01T00:00:00,5Z", "2020-01-01T00:00:00+24:00", "2020-01-01T00:00:00+08:60", "2016-12-31T23:59:60Z", "2026-11-23T11:00:00Z",
		"2020-01-01T9:30:00+08:00", "1850-01-01T00:00:00+23:00", "1849-12-31T20:00:00-08:00", "1970-01-01T00:00:00Z", "1988-12-31T12:00:00+08:00"} {
		f.Add([]byte(strings.Replace(string(envelope(schemas.HukouCancelled, []byte(`{"reason":"death"}`))), envelopeTime, tm, 1)))
	}
	for _, member := range []string{`"Subject":"11010519491231002X"`, `"ſubject":"11010519491231002X"`, `"Data":{"reason":"other"}`,
		`"traceparent":"x"`, "\"x\":\"\xff\"", `"x":"\udc00"`, `"id":"other"`, `"x":{"y":1,"y":2}`} {
		f.Add([]byte(strings.Replace(string(envelope(schemas.HukouCancelled, []byte(`{"reason":"death"}`))), `{`, `{`+member+`,`, 1)))
	}
	v, err := NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		checkEventAgreement(t, v, value)
	})
}

// FuzzFieldAgreement puts arbitrary values into one property of a
// documented example, which reaches the patterns, enumerations and limits
// far faster than mutating whole documents: the value is raw JSON when it
// parses as JSON, otherwise a string.
func FuzzFieldAgreement(f *testing.F) {
	type doc struct {
		typ   schemas.Type
		base  map[string]json.RawMessage
		props []string
	}
	var docs []doc
	for _, typ := range schemas.Types() {
		s := readDataSchema(f, typ)
		props := make([]string, 0, len(s.Properties))
		for p := range s.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		for _, ex := range s.Examples {
			var base map[string]json.RawMessage
			if err := json.Unmarshal(ex, &base); err != nil {
				f.Fatal(err)
			}
			docs = append(docs, doc{typ, base, props})
		}
	}
	for i, d := range docs {
		for j, p := range d.props {
			if v, ok := d.base[p]; ok {
				f.Add(uint8(i), uint8(j), string(v))
			}
		}
	}
	v, err := NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, di, pi uint8, val string) {
		d := docs[int(di)%len(docs)]
		m := maps.Clone(d.base)
		raw := json.RawMessage(val)
		if !json.Valid(raw) {
			raw, _ = json.Marshal(val)
		}
		m[d.props[int(pi)%len(d.props)]] = raw
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		checkDataAgreement(t, v, d.typ, b)
	})
}
