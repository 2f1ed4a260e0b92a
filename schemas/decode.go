package schemas

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/citizenid"
)

// Decode parses and validates one event. Any failure is a *RejectError.
//
// It reads the envelope and the data in one pass over the value, without
// reflection, and gives exactly the results of decodeStd, the
// encoding/json reference: the same Event for every input, the same
// RejectError for every rejected one. The scanner only ever takes the
// decision on input it fully understands: anything else — malformed JSON,
// text that is not UTF-8 or holds a lone surrogate escape, a value of the
// wrong JSON type, an unknown data field, a data key that only matches a
// field case-insensitively, a member name that is escaped or not a
// CloudEvents attribute name, a member name that comes twice in one
// object, deep nesting — is handed to decodeStd, which then produces the reject (or, for the rare
// valid oddity, the event). The rules on attributes and data are shared
// (checkEnvelope, the validators), so only the JSON reading differs.
func Decode(in Input) (Event, error) {
	var a attrs
	s := scanner{b: in.Value}
	if !s.envelope(&a) {
		return decodeStd(in)
	}
	ev, spec, now, rej := checkEnvelope(in, &a)
	if rej != nil {
		return ev, rej
	}
	data := s.payload
	if data == nil || s.payloadType != a.typ {
		data = spec.new()
		ds := scanner{b: a.data}
		if !ds.data(data) {
			return decodeStd(in)
		}
	}
	v := validator{now: now, subject: ev.Subject, at: ev.Time}
	data.validate(&v)
	if v.err != nil {
		return ev, v.err
	}
	ev.Payload = data
	return ev, nil
}

// maxScanDepth bounds the nesting the scanner follows (encoding/json's
// limit is 10000); deeper values go to decodeStd.
const maxScanDepth = 100

// scanner reads JSON from b at i. Its methods report false, with i left
// anywhere, for input they do not handle; the caller then gives up.
type scanner struct {
	b     []byte
	i     int
	depth int

	// payload is the data attribute read by envelope into the struct of
	// payloadType, the type attribute seen before it; nil if there was
	// none or data() gave up.
	payload     Data
	payloadType string

	// seen has a bit for each attribute read so far (see attribute), and
	// ext the names of the extension attributes: a member name that comes
	// twice sends the value to decodeStd, which rejects it.
	seen uint8
	ext  [][]byte
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// envelope reads the whole value as a CloudEvents object into a, as
// json.Unmarshal into envelope would, and checks that nothing but white
// space follows it.
func (s *scanner) envelope(a *attrs) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			key, plain, ok := s.key()
			if !ok {
				return false
			}
			if !s.attribute(a, key, plain) {
				return false
			}
			c := s.peek()
			s.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return false
			}
			s.skipSpace()
		}
	}
	s.skipSpace()
	if s.i != len(s.b) {
		return false
	}
	if a.data != nil {
		a.data = append(make([]byte, 0, len(a.data)), a.data...)
	}
	return true
}

// key reads an object key and the colon after it. plain reports that the
// key has no escapes and no bytes outside ASCII, so its bytes are its value.
func (s *scanner) key() (key []byte, plain, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	raw, flags, ok := s.rawString()
	if !ok || s.peek() != ':' {
		return nil, false, false
	}
	s.i++
	s.skipSpace()
	return raw, flags == 0, true
}

// attribute reads the value of one envelope member. A string attribute
// takes a string or null (null unsets it, as it sets encoding/json's
// pointer to nil); data takes any value, kept raw.
func (s *scanner) attribute(a *attrs, key []byte, plain bool) bool {
	var val *string
	var has *bool
	var name string
	var bit uint8 // the attribute's bit in s.seen
	switch string(key) {
	case "specversion":
		val, has, name, bit = &a.specVersion, &a.hasSpecVersion, "specversion", 1<<0
	case "id":
		val, has, bit = &a.id, &a.hasID, 1<<1
	case "source":
		val, has, name, bit = &a.source, &a.hasSource, "source", 1<<2
	case "type":
		val, has, name, bit = &a.typ, &a.hasType, "type", 1<<3
	case "subject":
		val, has, bit = &a.subject, &a.hasSubject, 1<<4
	case "time":
		val, has, bit = &a.time, &a.hasTime, 1<<5
	case "datacontenttype":
		val, has, name, bit = &a.dataContentType, &a.hasDataContentType, "datacontenttype", 1<<6
	case "data":
		if !s.firstSeen(1 << 7) {
			return false
		}
		start := s.i
		s.payload, s.payloadType = nil, ""
		// Usually type comes before data: then read the data into its
		// struct now rather than in a second pass.
		if e, ok := catalogueByName[a.typ]; ok && a.hasType {
			d := e.spec.new()
			sub := scanner{b: s.b, i: s.i}
			if sub.data(d) {
				s.i = sub.i
				a.data = s.b[start:s.i]
				s.payload, s.payloadType = d, a.typ
				return true
			}
		}
		if !s.skipValue() {
			return false
		}
		a.data = s.b[start:s.i]
		return true
	default:
		// Any other member is an extension attribute. decodeStd judges
		// an escaped name (after unescaping) and rejects an invalid one.
		if !plain || !attributeName(key) {
			return false
		}
		if !s.firstTime(&s.ext, key) {
			return false
		}
		return s.skipValue()
	}
	if !s.firstSeen(bit) {
		return false
	}
	switch s.peek() {
	case 'n':
		if !s.literal("null") {
			return false
		}
		*val, *has = "", false
		return true
	case '"':
		raw, flags, ok := s.rawString()
		if !ok {
			return false
		}
		*val, *has = s.attrString(name, raw, flags), true
		return true
	}
	return false
}

// catalogueByName is the catalogue keyed by plain strings, so that a
// []byte can be looked up without allocating; the entry also gives the
// Type's own string, to reuse rather than copy.
var catalogueByName = func() map[string]typeEntry {
	m := make(map[string]typeEntry, len(catalogue))
	for t, spec := range catalogue {
		m[string(t)] = typeEntry{t, spec}
	}
	return m
}()

type typeEntry struct {
	typ  Type
	spec typeSpec
}

// attrString is the value of the string whose raw contents rawString
// returned, for the attribute named by key: the constant it equals, for
// the attributes that have one, else a new string.
func (s *scanner) attrString(key string, raw []byte, flags uint8) string {
	if flags != 0 {
		return string(unquote(raw, flags))
	}
	switch key {
	case "specversion":
		if string(raw) == SpecVersion {
			return SpecVersion
		}
	case "datacontenttype":
		if string(raw) == "application/json" {
			return "application/json"
		}
	case "source":
		for _, src := range Sources {
			if string(raw) == string(src) {
				return string(src)
			}
		}
	case "type":
		if e, ok := catalogueByName[string(raw)]; ok {
			return string(e.typ)
		}
	}
	return string(raw)
}

// String flags from rawString.
const (
	strEscaped  = 1 << iota // has a backslash escape
	strNonASCII             // has bytes >= 0x80 (UTF-8, maybe invalid)
)

// rawString reads a JSON string at i, checking it as encoding/json's
// scanner does (no control characters, only the escapes JSON defines), and
// returns the bytes between the quotes.
func (s *scanner) rawString() (raw []byte, flags uint8, ok bool) {
	b := s.b
	i := s.i + 1 // after the opening quote
	start := i
	for i < len(b) {
		c := b[i]
		if plainByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return b[start:i], flags, true
		case c == '\\':
			flags |= strEscaped
			if i+1 >= len(b) {
				return nil, 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				n := escapeLen(b[i:])
				if n == 0 {
					return nil, 0, false
				}
				i += n
			default:
				return nil, 0, false
			}
		case c >= utf8.RuneSelf:
			flags |= strNonASCII
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, 0, false // not UTF-8: decodeStd rejects the value
			}
			i += size
		default: // a control character
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// escapeLen is the length of the \u escape at the start of b: 6, or 12 for
// a surrogate pair, or 0 for a malformed escape or a lone surrogate, which
// encoding/json would read as U+FFFD and the hub rejects (see checkText).
func escapeLen(b []byte) int {
	r, ok := hexEscape(b)
	switch {
	case !ok:
		return 0
	case !utf16.IsSurrogate(r):
		return 6
	}
	if r2, ok := hexEscape(b[6:]); ok && r < 0xdc00 && 0xdc00 <= r2 && r2 <= 0xdfff {
		return 12
	}
	return 0
}

// hexEscape reads the \uXXXX escape at the start of b.
func hexEscape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' || !isHex(b[2]) || !isHex(b[3]) || !isHex(b[4]) || !isHex(b[5]) {
		return 0, false
	}
	return hex4(b[2:]), true
}

// plainByte marks the bytes a JSON string holds as they are: ASCII other
// than control characters, the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// stringValue reads a JSON string at i and returns its value.
func (s *scanner) stringValue() (string, bool) {
	raw, flags, ok := s.rawString()
	if !ok {
		return "", false
	}
	if flags == 0 {
		return string(raw), true
	}
	return string(unquote(raw, flags)), true
}

// unquote returns the value of raw string contents that rawString
// accepted, as encoding/json decodes it: escapes resolved. rawString lets
// through only valid UTF-8 and \u escapes that are not lone surrogates, so
// nothing here is replaced by U+FFFD.
func unquote(raw []byte, flags uint8) []byte {
	if flags == strNonASCII {
		return raw
	}
	out := make([]byte, 0, len(raw)+utf8.UTFMax)
	for r := 0; r < len(raw); {
		c := raw[r]
		if c != '\\' {
			out = append(out, c)
			r++
			continue
		}
		switch e := raw[r+1]; e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			rr := hex4(raw[r+2:])
			r += 6
			if utf16.IsSurrogate(rr) { // the high half of a pair
				rr = utf16.DecodeRune(rr, hex4(raw[r+2:]))
				r += 6
			}
			out = utf8.AppendRune(out, rr)
			continue
		default: // '"', '\\', '/'
			out = append(out, e)
		}
		r += 2
	}
	return out
}

// hex4 is the value of four hex digits rawString checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// literal reads the literal lit (true, false, null) at i.
func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads a JSON number at i and returns its text.
func (s *scanner) number() ([]byte, bool) {
	b, start := s.b, s.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	s.i = i
	return b[start:i], true
}

// skipValue checks the JSON value at i (after white space) and moves past
// it.
func (s *scanner) skipValue() bool {
	switch s.peek() {
	case '"':
		_, _, ok := s.rawString()
		return ok
	case '{':
		if s.depth++; s.depth > maxScanDepth {
			return false
		}
		s.i++
		if s.peek() == '}' {
			s.i++
			s.depth--
			return true
		}
		var buf [maxNames][]byte
		names := buf[:0]
		for {
			key, plain, ok := s.key()
			if !ok || !plain || !s.firstTime(&names, key) || !s.skipValue() {
				return false
			}
			c := s.peek()
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
		if s.peek() == ']' {
			s.i++
			s.depth--
			return true
		}
		for {
			if !s.skipValue() {
				return false
			}
			c := s.peek()
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
	default:
		_, ok := s.number()
		return ok
	}
}

// firstSeen reports whether the attribute of bit has not been read yet,
// and marks it read.
func (s *scanner) firstSeen(bit uint8) bool {
	if s.seen&bit != 0 {
		return false
	}
	s.seen |= bit
	return true
}

// firstTime reports whether key is not yet among names, and adds it.
// Past maxNames names it reports false, to leave a large object to
// decodeStd rather than compare every pair.
func (s *scanner) firstTime(names *[][]byte, key []byte) bool {
	if len(*names) == maxNames {
		return false
	}
	for _, name := range *names {
		if string(name) == string(key) {
			return false
		}
	}
	*names = append(*names, key)
	return true
}

// maxNames is the most member names of one object that the scanner
// compares with each other (see firstTime).
const maxNames = 16

// field is where the value of one data member goes: one pointer is set,
// by the Go type of the struct field.
type field struct {
	str  *string
	list *[]string
	num  **float64
	id   *citizenid.ID
}

// data reads b, the raw data attribute, into d as a json.Decoder with
// DisallowUnknownFields would. It handles the values that decoder accepts
// without error; it reports false on everything else (unknown or
// case-folded keys, wrong JSON types, null inside a list, an invalid
// spouse_id, …), which makes the decoder reject the data or, rarely,
// accept it in a way only it knows.
func (s *scanner) data(d Data) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	var seen [12]field // the fields read so far; a payload has at most 8
	n := 0
	for {
		key, plain, ok := s.key()
		if !ok || !plain {
			return false
		}
		f := dataField(d, key)
		for _, g := range seen[:n] {
			if f == g {
				return false // a name that comes twice
			}
		}
		if n == len(seen) {
			return false
		}
		seen[n] = f
		n++
		if !s.member(f) {
			return false
		}
		c := s.peek()
		s.i++
		if c == '}' {
			return true
		}
		if c != ',' {
			return false
		}
	}
}

// member reads the value of one data member into f. null leaves a string
// (and a citizen ID) as it was and sets a list or a pointer to nil, as
// encoding/json does.
func (s *scanner) member(f field) bool {
	c := s.peek()
	if c == 'n' {
		if !s.literal("null") {
			return false
		}
		switch {
		case f.list != nil:
			*f.list = nil
		case f.num != nil:
			*f.num = nil
		case f.str == nil && f.id == nil:
			return false
		}
		return true
	}
	switch {
	case f.str != nil:
		if c != '"' {
			return false
		}
		v, ok := s.stringValue()
		*f.str = v
		return ok
	case f.id != nil:
		if c != '"' {
			return false
		}
		v, ok := s.stringValue()
		if !ok {
			return false
		}
		// The reference decodes through citizenid.ID.UnmarshalText,
		// which checks against the wall clock, not Input.Now.
		id, err := citizenid.Parse(v)
		if err != nil {
			return false
		}
		*f.id = id
		return true
	case f.num != nil:
		text, ok := s.number()
		if !ok {
			return false
		}
		x, err := strconv.ParseFloat(string(text), 64)
		if err != nil {
			return false
		}
		if *f.num == nil {
			*f.num = new(float64)
		}
		**f.num = x
		return true
	case f.list != nil:
		if c != '[' {
			return false
		}
		s.i++
		// encoding/json makes an empty, not a nil, slice of [].
		list := make([]string, 0, 4)
		if s.peek() == ']' {
			s.i++
			*f.list = list
			return true
		}
		for {
			if s.peek() != '"' {
				return false
			}
			v, ok := s.stringValue()
			if !ok {
				return false
			}
			list = append(list, v)
			c := s.peek()
			s.i++
			if c == ']' {
				*f.list = list
				return true
			}
			if c != ',' {
				return false
			}
		}
	}
	return false
}

// dataField maps a data member's key to its field in d: the json tags of
// the catalogue structs, spelled exactly (TestDataFieldCoversTags keeps
// the two in step). A zero field means the key is not spelled as a tag.
func dataField(d Data, key []byte) field {
	switch d := d.(type) {
	case *HukouRegisteredData:
		switch string(key) {
		case "name":
			return field{str: &d.Name}
		case "gender":
			return field{str: &d.Gender}
		case "birth_date":
			return field{str: &d.BirthDate}
		case "ethnicity":
			return field{str: &d.Ethnicity}
		case "address_code":
			return field{str: &d.AddressCode}
		case "household_id":
			return field{str: &d.HouseholdID}
		case "relation":
			return field{str: &d.Relation}
		case "reason":
			return field{str: &d.Reason}
		}
	case *HukouMigratedData:
		switch string(key) {
		case "from_address_code":
			return field{str: &d.FromAddressCode}
		case "to_address_code":
			return field{str: &d.ToAddressCode}
		case "reason":
			return field{str: &d.Reason}
		case "household_id":
			return field{str: &d.HouseholdID}
		}
	case *HukouCancelledData:
		if string(key) == "reason" {
			return field{str: &d.Reason}
		}
	case *ResidencePermitIssuedData:
		switch string(key) {
		case "city_code":
			return field{str: &d.CityCode}
		case "address_code":
			return field{str: &d.AddressCode}
		case "basis":
			return field{str: &d.Basis}
		case "valid_until":
			return field{str: &d.ValidUntil}
		}
	case *ResidencePermitRevokedData:
		if string(key) == "city_code" {
			return field{str: &d.CityCode}
		}
	case *IdentityCorrectedData:
		switch string(key) {
		case "name":
			return field{str: &d.Name}
		case "gender":
			return field{str: &d.Gender}
		case "birth_date":
			return field{str: &d.BirthDate}
		case "ethnicity":
			return field{str: &d.Ethnicity}
		}
	case *DeathCertifiedData:
		switch string(key) {
		case "date_of_death":
			return field{str: &d.DateOfDeath}
		case "certificate_no":
			return field{str: &d.CertificateNo}
		case "place_code":
			return field{str: &d.PlaceCode}
		}
	case *ContractStartedData:
		switch string(key) {
		case "contract_id":
			return field{str: &d.ContractID}
		case "employer_id":
			return field{str: &d.EmployerID}
		case "employer_name":
			return field{str: &d.EmployerName}
		case "work_region":
			return field{str: &d.WorkRegion}
		case "start":
			return field{str: &d.Start}
		case "end":
			return field{str: &d.End}
		}
	case *ContractEndedData:
		switch string(key) {
		case "contract_id":
			return field{str: &d.ContractID}
		case "end":
			return field{str: &d.End}
		}
	case *InsuranceEnrolledData:
		switch string(key) {
		case "scheme":
			return field{str: &d.Scheme}
		case "insurances":
			return field{list: &d.Insurances}
		case "region":
			return field{str: &d.Region}
		case "start":
			return field{str: &d.Start}
		}
	case *ContributionRecordedData:
		switch string(key) {
		case "month":
			return field{str: &d.Month}
		case "region":
			return field{str: &d.Region}
		case "insurances":
			return field{list: &d.Insurances}
		}
	case *InsuranceTerminatedData:
		switch string(key) {
		case "insurances":
			return field{list: &d.Insurances}
		case "region":
			return field{str: &d.Region}
		case "end":
			return field{str: &d.End}
		}
	case *InsuranceTransferredData:
		switch string(key) {
		case "from_region":
			return field{str: &d.FromRegion}
		case "to_region":
			return field{str: &d.ToRegion}
		}
	case *EducationEnrolledData:
		switch string(key) {
		case "institution":
			return field{str: &d.Institution}
		case "level":
			return field{str: &d.Level}
		case "region":
			return field{str: &d.Region}
		case "start":
			return field{str: &d.Start}
		}
	case *EducationGraduatedData:
		switch string(key) {
		case "institution":
			return field{str: &d.Institution}
		case "level":
			return field{str: &d.Level}
		case "date":
			return field{str: &d.Date}
		case "certificate_no":
			return field{str: &d.CertificateNo}
		}
	case *PropertyRegisteredData:
		switch string(key) {
		case "property_id":
			return field{str: &d.PropertyID}
		case "address_code":
			return field{str: &d.AddressCode}
		case "acquired":
			return field{str: &d.Acquired}
		case "area_m2":
			return field{num: &d.AreaM2}
		}
	case *PropertyTransferredData:
		if string(key) == "property_id" {
			return field{str: &d.PropertyID}
		}
	case *RentalRegisteredData:
		switch string(key) {
		case "lease_id":
			return field{str: &d.LeaseID}
		case "address_code":
			return field{str: &d.AddressCode}
		case "start":
			return field{str: &d.Start}
		case "end":
			return field{str: &d.End}
		}
	case *RentalEndedData:
		switch string(key) {
		case "lease_id":
			return field{str: &d.LeaseID}
		case "end":
			return field{str: &d.End}
		}
	case *BusinessRegisteredData:
		switch string(key) {
		case "business_id":
			return field{str: &d.BusinessID}
		case "region":
			return field{str: &d.Region}
		case "name":
			return field{str: &d.Name}
		}
	case *BusinessDeregisteredData:
		if string(key) == "business_id" {
			return field{str: &d.BusinessID}
		}
	case *MarriageRegisteredData:
		if string(key) == "spouse_id" {
			return field{id: &d.SpouseID}
		}
	case *MarriageDivorcedData:
		if string(key) == "spouse_id" {
			return field{id: &d.SpouseID}
		}
	}
	return field{}
}
