package schemas

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Encode renders an event in structured JSON mode: the envelope with every
// attribute (specversion "1.0" and datacontenttype "application/json" when
// unset) and the data, which is Data when set, else Payload encoded. It
// writes exactly what encoding/json writes for them (encodeStd), HTML
// escapes and all, and fails where it fails: on Data that is not JSON.
func Encode(ev Event) ([]byte, error) {
	return ev.AppendJSON(make([]byte, 0, ev.encodedSizeHint()))
}

// AppendJSON appends the event as Encode renders it to b. On an error b is
// returned as it was. Publishers encode many events into one buffer with
// it; each event's bytes are then a slice of that buffer.
//
// It handles the envelope, data that is already compact JSON without
// characters encoding/json escapes (what Encode and the synthetic
// generator write) and the Payload of every catalogue type itself, and
// hands anything else to encoding/json.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	start := len(b)
	specVersion, contentType := e.SpecVersion, e.DataContentType
	if specVersion == "" {
		specVersion = SpecVersion
	}
	if contentType == "" {
		contentType = "application/json"
	}
	b = append(b, `{"specversion":`...)
	b = appendQuoted(b, specVersion)
	b = append(b, `,"id":`...)
	b = appendQuoted(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendQuoted(b, string(e.Source))
	b = append(b, `,"type":`...)
	b = appendQuoted(b, string(e.Type))
	b = append(b, `,"subject":`...)
	b = appendQuoted(b, string(e.Subject))
	// RFC 3339 times are digits, letters and -+:.T only: nothing to escape.
	b = append(b, `,"time":"`...)
	b = wireTime(e.Time).AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","datacontenttype":`...)
	b = appendQuoted(b, contentType)
	b = append(b, `,"data":`...)
	ok := true
	switch {
	case e.Data != nil:
		if ok = compactJSON(e.Data); ok {
			b = append(b, e.Data...)
		}
	case e.Payload == nil:
		b = append(b, "null"...)
	default:
		b, ok = appendData(b, e.Payload)
	}
	if !ok {
		v, err := encodeStd(*e)
		if err != nil {
			return b[:start], err
		}
		return append(b[:start], v...), nil
	}
	return append(b, '}'), nil
}

// encodedSizeHint is about the length of the event's encoding.
func (e *Event) encodedSizeHint() int {
	n := 160 + len(e.SpecVersion) + len(e.ID) + len(e.Source) + len(e.Type) + len(e.Subject) + len(e.DataContentType) + len(e.Data)
	if e.Data == nil && e.Payload != nil {
		n += 192
	}
	return n
}

// compactJSON reports whether b is a JSON value that encoding/json would
// write unchanged as a json.RawMessage: valid, without white space outside
// strings, and without the characters it escapes (<, >, &, U+2028 and
// U+2029). False means only "not handled here": encoding/json decides.
func compactJSON(b []byte) bool {
	s := scanner{b: b}
	return s.compactValue() && s.i == len(b)
}

// compactValue is skipValue for compactJSON: the same grammar, in one
// pass, with no white space allowed and strings checked by compactString.
func (s *scanner) compactValue() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		return s.compactString()
	case '{':
		if s.depth++; s.depth > maxScanDepth {
			return false
		}
		s.i++
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			s.depth--
			return true
		}
		for {
			if s.i >= len(s.b) || s.b[s.i] != '"' || !s.compactString() ||
				s.i >= len(s.b) || s.b[s.i] != ':' {
				return false
			}
			s.i++
			if !s.compactValue() || s.i >= len(s.b) {
				return false
			}
			c := s.b[s.i]
			s.i++
			if c == '}' {
				s.depth--
				return true
			}
			if c != ',' {
				return false
			}
		}
	case '[':
		if s.depth++; s.depth > maxScanDepth {
			return false
		}
		s.i++
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			s.depth--
			return true
		}
		for {
			if !s.compactValue() || s.i >= len(s.b) {
				return false
			}
			c := s.b[s.i]
			s.i++
			if c == ']' {
				s.depth--
				return true
			}
			if c != ',' {
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}

// compactString reads a JSON string at i as rawString does, and refuses
// one holding a character encoding/json escapes when it compacts.
func (s *scanner) compactString() bool {
	b := s.b
	i := s.i + 1 // after the opening quote
	for i < len(b) {
		c := b[i]
		if compactPlain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return true
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return false
				}
				i += 6
			default:
				return false
			}
		case c == 0xE2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9
			if i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8 {
				return false
			}
			i++
		default: // a control character, < > &
			return false
		}
	}
	return false
}

// compactPlain marks the bytes compactString passes over: those of
// plainByte other than < > &, and every byte of UTF-8 (valid or not, as
// encoding/json leaves it) but the lead byte of U+2028 and U+2029.
var compactPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0xE2
	}
	return t
}()

// jsonSafe marks the bytes encoding/json writes in a string as they are
// (its htmlSafeSet): printable ASCII other than " \ < > &.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendQuoted appends s as a JSON string exactly as encoding/json writes
// it with HTML escaping: \b \f \n \r \t and \" \\ as such, other control
// characters and < > & as \u00XX, U+2028 and U+2029 escaped, each byte of
// invalid UTF-8 as \ufffd; everything else, Chinese text included, as is.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	i := 0
	for i < len(s) && jsonSafe[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendKey appends a data member's key, after a comma unless it is the
// object's first member (data objects hold no nested objects, so '{' is
// the last byte only right after the opening brace).
func appendKey(b []byte, key string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

// appendString appends a string member.
func appendString(b []byte, key, s string) []byte {
	return appendQuoted(appendKey(b, key), s)
}

// appendOptional appends a string member tagged omitempty.
func appendOptional(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, key, s)
}

// appendList appends a []string member (null when nil, as encoding/json).
func appendList(b []byte, key string, list []string) []byte {
	b = appendKey(b, key)
	if list == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuoted(b, s)
	}
	return append(b, ']')
}

// appendFloat appends a finite float64 as encoding/json does (as ES6
// numbers print), or reports false for NaN and the infinities, which
// encoding/json refuses.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendData appends the data of a catalogue type as encoding/json
// marshals its struct: members in field order, omitempty ones left out
// when empty. ok is false, with b unspecified, for what it leaves to
// encoding/json: a type that is not exactly a catalogue struct pointer
// (one embedding a catalogue struct, say), a nil pointer, an area that is
// not a finite number. The json tags of the catalogue are mirrored here;
// the differential tests hold the two in step.
func appendData(b []byte, d Data) ([]byte, bool) {
	b = append(b, '{')
	switch d := d.(type) {
	case *HukouRegisteredData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "name", d.Name)
		b = appendString(b, "gender", d.Gender)
		b = appendString(b, "birth_date", d.BirthDate)
		b = appendString(b, "ethnicity", d.Ethnicity)
		b = appendString(b, "address_code", d.AddressCode)
		b = appendString(b, "household_id", d.HouseholdID)
		b = appendOptional(b, "relation", d.Relation)
		b = appendOptional(b, "reason", d.Reason)
	case *HukouMigratedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "from_address_code", d.FromAddressCode)
		b = appendString(b, "to_address_code", d.ToAddressCode)
		b = appendString(b, "reason", d.Reason)
		b = appendOptional(b, "household_id", d.HouseholdID)
	case *HukouCancelledData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "reason", d.Reason)
	case *ResidencePermitIssuedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "city_code", d.CityCode)
		b = appendString(b, "address_code", d.AddressCode)
		b = appendString(b, "basis", d.Basis)
		b = appendOptional(b, "valid_until", d.ValidUntil)
	case *ResidencePermitRevokedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "city_code", d.CityCode)
	case *IdentityCorrectedData:
		if d == nil {
			return b, false
		}
		b = appendOptional(b, "name", d.Name)
		b = appendOptional(b, "gender", d.Gender)
		b = appendOptional(b, "birth_date", d.BirthDate)
		b = appendOptional(b, "ethnicity", d.Ethnicity)
	case *DeathCertifiedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "date_of_death", d.DateOfDeath)
		b = appendString(b, "certificate_no", d.CertificateNo)
		b = appendOptional(b, "place_code", d.PlaceCode)
	case *ContractStartedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "contract_id", d.ContractID)
		b = appendString(b, "employer_id", d.EmployerID)
		b = appendString(b, "employer_name", d.EmployerName)
		b = appendString(b, "work_region", d.WorkRegion)
		b = appendString(b, "start", d.Start)
		b = appendOptional(b, "end", d.End)
	case *ContractEndedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "contract_id", d.ContractID)
		b = appendString(b, "end", d.End)
	case *InsuranceEnrolledData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "scheme", d.Scheme)
		b = appendList(b, "insurances", d.Insurances)
		b = appendString(b, "region", d.Region)
		b = appendString(b, "start", d.Start)
	case *ContributionRecordedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "month", d.Month)
		b = appendString(b, "region", d.Region)
		b = appendList(b, "insurances", d.Insurances)
	case *InsuranceTerminatedData:
		if d == nil {
			return b, false
		}
		b = appendList(b, "insurances", d.Insurances)
		b = appendString(b, "region", d.Region)
		b = appendString(b, "end", d.End)
	case *InsuranceTransferredData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "from_region", d.FromRegion)
		b = appendString(b, "to_region", d.ToRegion)
	case *EducationEnrolledData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "institution", d.Institution)
		b = appendString(b, "level", d.Level)
		b = appendString(b, "region", d.Region)
		b = appendString(b, "start", d.Start)
	case *EducationGraduatedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "institution", d.Institution)
		b = appendString(b, "level", d.Level)
		b = appendString(b, "date", d.Date)
		b = appendString(b, "certificate_no", d.CertificateNo)
	case *PropertyRegisteredData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "property_id", d.PropertyID)
		b = appendString(b, "address_code", d.AddressCode)
		b = appendString(b, "acquired", d.Acquired)
		if d.AreaM2 != nil {
			var ok bool
			if b, ok = appendFloat(appendKey(b, "area_m2"), *d.AreaM2); !ok {
				return b, false
			}
		}
	case *PropertyTransferredData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "property_id", d.PropertyID)
	case *RentalRegisteredData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "lease_id", d.LeaseID)
		b = appendString(b, "address_code", d.AddressCode)
		b = appendString(b, "start", d.Start)
		b = appendOptional(b, "end", d.End)
	case *RentalEndedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "lease_id", d.LeaseID)
		b = appendString(b, "end", d.End)
	case *BusinessRegisteredData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "business_id", d.BusinessID)
		b = appendString(b, "region", d.Region)
		b = appendOptional(b, "name", d.Name)
	case *BusinessDeregisteredData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "business_id", d.BusinessID)
	case *MarriageRegisteredData:
		if d == nil {
			return b, false
		}
		// citizenid.ID marshals as text: its characters, quoted.
		b = appendString(b, "spouse_id", string(d.SpouseID))
	case *MarriageDivorcedData:
		if d == nil {
			return b, false
		}
		b = appendString(b, "spouse_id", string(d.SpouseID))
	default:
		return b, false
	}
	return append(b, '}'), true
}

// AppendJSONString appends s as encoding/json writes a string (HTML
// characters, U+2028 and U+2029 escaped; invalid UTF-8 as U+FFFD). Stores
// that write their own JSON lines use it.
func AppendJSONString(b []byte, s string) []byte { return appendQuoted(b, s) }

// IsCompactJSON reports whether b is one JSON value that encoding/json
// would write unchanged as a json.RawMessage: no white space outside
// strings and nothing it escapes (HTML characters, U+2028, U+2029). Such
// a value can be appended as is.
func IsCompactJSON(b []byte) bool { return compactJSON(b) }

// AppendJSONTime appends t quoted as time.Time.MarshalJSON writes it, and
// reports false (b unchanged) for the times it would not write that way:
// a year outside 0–9999 or a zone offset that is not whole minutes within
// a day.
func AppendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}
