// Package schemas is pophub's wire contract: the CloudEvents envelope that
// departments publish to Kafka, the catalogue of event types with the Go
// struct of each type's data, the notifications the hub publishes on NATS,
// and (in jsonschema/) the same contract as JSON Schema, AsyncAPI and
// OpenAPI documents. It imports nothing else of pophub's, so departments and
// subscribers can depend on it alone.
package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pophub/pophub/schemas/citizenid"
)

// Source names a department system. It is also the last token of the Kafka
// topic the department publishes to.
type Source string

// The eight department sources.
const (
	PublicSecurity  Source = "public_security"
	Health          Source = "health"
	Employment      Source = "employment"
	SocialInsurance Source = "social_insurance"
	Education       Source = "education"
	Housing         Source = "housing"
	Tax             Source = "tax"
	Marriage        Source = "marriage"
)

// Sources lists every department source in a stable order.
var Sources = []Source{PublicSecurity, Health, Employment, SocialInsurance, Education, Housing, Tax, Marriage}

// Valid reports whether s is one of the eight sources.
func (s Source) Valid() bool {
	for _, v := range Sources {
		if v == s {
			return true
		}
	}
	return false
}

// TopicPrefix prefixes every source topic; DLQTopic receives rejects.
const (
	TopicPrefix = "pop.events."
	DLQTopic    = "pop.events.dlq"
)

// Topic is the Kafka topic a source publishes to.
func Topic(s Source) string { return TopicPrefix + string(s) }

// SourceOfTopic returns the source a topic belongs to, or "" if the topic is
// not a source topic.
func SourceOfTopic(topic string) Source {
	s := Source(strings.TrimPrefix(topic, TopicPrefix))
	if !strings.HasPrefix(topic, TopicPrefix) || !s.Valid() {
		return ""
	}
	return s
}

// Topics lists the eight source topics.
func Topics() []string {
	out := make([]string, len(Sources))
	for i, s := range Sources {
		out[i] = Topic(s)
	}
	return out
}

// SpecVersion is the only CloudEvents version accepted.
const SpecVersion = "1.0"

// Event is one department record change: a CloudEvents 1.0 event in
// structured JSON mode. Data holds the raw JSON; Payload the same data
// decoded into the catalogue struct of Type (set by Decode).
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          Source          `json:"source"`
	Type            Type            `json:"type"`
	Subject         citizenid.ID    `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data"`
	Payload         Data            `json:"-"`
}

// Key is the idempotency key of an event: (source, id).
func (e *Event) Key() EventKey { return EventKey{Source: e.Source, ID: e.ID} }

// EventKey identifies an event uniquely across all sources.
type EventKey struct {
	Source Source
	ID     string
}

// Reasons an event is rejected to the DLQ. They are stable: metrics, DLQ
// headers and operators' tooling use them.
const (
	ReasonNotJSON        = "not_json"
	ReasonNotCloudEvent  = "not_cloudevent"
	ReasonUnknownType    = "unknown_type"
	ReasonSourceMismatch = "source_mismatch"
	ReasonKeyMismatch    = "key_mismatch"
	ReasonInvalidSubject = "invalid_subject"
	ReasonInvalidData    = "invalid_data"
	// ReasonUnknownAddressCode: a well-formed 12-digit address code, or
	// 6-digit region or city code, that the region table (schemas/region)
	// does not have.
	ReasonUnknownAddressCode = "unknown_address_code"
	// ReasonTooLarge: a record the hub will not hold whole (hub/ingest):
	// more than 1,000 headers. Decode never gives it.
	ReasonTooLarge = "too_large"
)

// MaxIDLength is the most characters an event id may have.
const MaxIDLength = 200

// Reasons lists every reject reason: those Decode can give, and
// ReasonTooLarge.
var Reasons = []string{ReasonNotJSON, ReasonNotCloudEvent, ReasonUnknownType, ReasonSourceMismatch,
	ReasonKeyMismatch, ReasonInvalidSubject, ReasonInvalidData, ReasonUnknownAddressCode, ReasonTooLarge}

// RejectError says why an event cannot be applied. Field names the offending
// attribute or data field (JSON path), when there is one. It never contains
// a citizen ID.
type RejectError struct {
	Reason string
	Field  string
	Detail string
}

func (e *RejectError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Reason, e.Field, e.Detail)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
}

func reject(reason, field, format string, args ...any) *RejectError {
	return &RejectError{Reason: reason, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reject reason of err, or "" if err is not a
// *RejectError.
func ReasonOf(err error) string {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// Input carries what the decoder needs besides the value: the topic the
// record came from (its source must match) and the record key (must equal
// the subject). An empty Topic, or a nil Key without FromKafka, skips that
// check, for events that do not come from Kafka (the HTTP gateway, files).
type Input struct {
	Topic string
	Key   []byte
	Value []byte
	Now   time.Time

	// FromKafka says the value is a Kafka record's, whose key must be
	// the subject: a nil Key (a record without a key) is then a
	// key_mismatch, not a check to skip. Kafka clients give a null key
	// as nil, which is otherwise indistinguishable from "no key here".
	FromKafka bool
}

// attrs are the envelope attributes as read from the wire: has* is false
// for an attribute that is missing or JSON null. Both decoders fill it, and
// checkEnvelope judges it, so the two agree on every rule.
type attrs struct {
	specVersion, id, source, typ, subject, time, dataContentType string

	hasSpecVersion, hasID, hasSource, hasType, hasSubject, hasTime, hasDataContentType bool

	// data is the raw JSON of the data attribute, owned by the decoder
	// (it becomes Event.Data); nil when missing.
	data []byte

	// parsedTime is the time attribute itself when timeParsed
	// (CheckEncoded); otherwise time is parsed.
	parsedTime time.Time
	timeParsed bool
}

// decodeStd is Decode written with encoding/json: the reference the fast
// decoder is tested against, and what it falls back to for input it does
// not handle itself (malformed JSON, type errors, escaped member names, and
// so on).
//
// The envelope is read into a map rather than a struct: encoding/json
// matches struct fields case-insensitively, which would let a member
// "Subject" or "Data" override the real attribute, where CloudEvents
// attribute names are lower-case and case-sensitive.
func decodeStd(in Input) (Event, error) {
	if len(in.Value) == 0 && in.FromKafka {
		return Event{}, reject(ReasonNotJSON, "", "the record has no value (empty, or null: a tombstone, as a compacted topic's producer writes after a delete); events carry no deletes")
	}
	if rej := checkText(in.Value); rej != nil {
		return Event{}, rej
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(in.Value, &members); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) && strings.Contains(se.Error(), "exceeded max depth") {
			return Event{}, nestingReject(in.Value)
		}
		if errors.As(err, &se) || !json.Valid(in.Value) {
			return Event{}, reject(ReasonNotJSON, "", "value is not a JSON document: %v", err)
		}
		return Event{}, reject(ReasonNotCloudEvent, "", "value is not a CloudEvents JSON object: %v", err)
	}
	if rej := checkUniqueNames(in.Value); rej != nil {
		return Event{}, rej
	}
	if rej := checkNames(members); rej != nil {
		return Event{}, rej
	}
	a := attrs{data: members["data"]}
	for _, f := range []struct {
		name string
		val  *string
		has  *bool
	}{
		{"specversion", &a.specVersion, &a.hasSpecVersion},
		{"id", &a.id, &a.hasID},
		{"source", &a.source, &a.hasSource},
		{"type", &a.typ, &a.hasType},
		{"subject", &a.subject, &a.hasSubject},
		{"time", &a.time, &a.hasTime},
		{"datacontenttype", &a.dataContentType, &a.hasDataContentType},
	} {
		raw, ok := members[f.name]
		if !ok {
			continue
		}
		var p *string // null unsets the attribute, as the scanner does
		if err := json.Unmarshal(raw, &p); err != nil {
			return Event{}, reject(ReasonNotCloudEvent, f.name, "must be a string")
		}
		*f.val, *f.has = deref(p)
	}
	ev, spec, now, rej := checkEnvelope(in, &a)
	if rej != nil {
		return ev, rej
	}
	if rej := checkDataNames(ev.Type, a.data); rej != nil {
		return ev, rej
	}
	data := spec.new()
	ddec := json.NewDecoder(bytes.NewReader(a.data))
	ddec.DisallowUnknownFields()
	if err := ddec.Decode(data); err != nil {
		return ev, dataDecodeError(err)
	}
	v := validator{now: now, subject: ev.Subject, at: ev.Time}
	data.validate(&v)
	if v.err != nil {
		return ev, v.err
	}
	ev.Payload = data
	return ev, nil
}

// maxJSONDepth is encoding/json's nesting limit: the most arrays and
// objects, the envelope counted, that a value may be nested in.
const maxJSONDepth = 10000

// nestingReject is the reject of b, a value nested deeper than
// maxJSONDepth. Such a value is JSON, which encoding/json only refuses to
// read, so it is not not_json: it names the envelope member holding the
// nesting, the data (invalid_data) or another attribute (not_cloudevent,
// whose attributes are never arrays or objects), or the value itself
// when it is not an object.
func nestingReject(b []byte) *RejectError {
	const detail = "is nested deeper than 10,000 levels of arrays and objects"
	if err := wholeJSON(b); err != nil {
		// Cut short or broken past the depth encoding/json stopped at.
		return reject(ReasonNotJSON, "", "value is not a JSON document: %v", err)
	}
	name, ok := deepMember(b)
	switch {
	case !ok:
		return reject(ReasonNotCloudEvent, "", "value %s", detail)
	case name == "data":
		return reject(ReasonInvalidData, "data", detail)
	}
	return reject(ReasonNotCloudEvent, quoteName(name), detail)
}

// wholeJSON reads b to its end with json.Decoder's tokens, which have
// no depth limit, and reports why it is not one JSON value.
func wholeJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, values := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 || values != 1 {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			if values++; values > 1 {
				return errors.New("more than one value")
			}
		}
	}
}

// deepMember is the name of the member of b, an object, whose value takes
// the nesting past maxJSONDepth; false when b is not an object or no
// member does. json.Decoder's tokens, unlike Unmarshal, have no depth
// limit.
func deepMember(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	for {
		tok, err := dec.Token()
		name, isName := tok.(string)
		if err != nil || !isName {
			return "", false
		}
		for depth := 1; ; { // the envelope
			tok, err := dec.Token()
			if err != nil {
				return "", false
			}
			switch tok {
			case json.Delim('{'), json.Delim('['):
				if depth++; depth > maxJSONDepth {
					return name, true
				}
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
			if depth == 1 {
				break
			}
		}
	}
}

// checkText holds the value to I-JSON (RFC 7493): UTF-8 throughout, and no
// \u escape of a lone UTF-16 surrogate. encoding/json would read either as
// U+FFFD, so two distinct events (ids "ps-\xfe" and "ps-\xff") would
// become one id and the second be dropped as a duplicate.
func checkText(b []byte) *RejectError {
	if !utf8.Valid(b) {
		return reject(ReasonNotJSON, "", "value is not valid UTF-8")
	}
	// Outside strings a backslash is a syntax error, which json.Unmarshal
	// reports; inside them, escapes are read left to right.
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 < len(b) && b[i+1] == 'u' {
			if n := escapeLen(b[i:]); n > 0 {
				i += n - 1
				continue
			}
			if _, ok := hexEscape(b[i:]); ok {
				return reject(ReasonNotJSON, "", "a string holds a lone UTF-16 surrogate escape")
			}
		}
		i++ // the escaped character: the second \ of \\ starts nothing
	}
	return nil
}

// checkUniqueNames holds the value to I-JSON's unique member names (RFC
// 7493, 2.3), in the envelope and at any depth of its data. encoding/json
// keeps the last of two members of one name, other parsers the first: a
// department's own tools would read another id, subject or reason than
// the hub applies. Names are compared after unescaping, so "id" and
// "\u0069d" are one name. b must already be valid JSON.
func checkUniqueNames(b []byte) *RejectError {
	type frame struct {
		object  bool
		names   []string        // an object's names so far, while few
		set     map[string]bool // and all of them, once many
		last    string          // the name of the member being read
		wantKey bool            // an object's next token is a name (or its end)
	}
	var stack []frame
	// ended marks a value complete: in an object, a name comes next.
	ended := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	// seen reports whether f already has name, and adds it. A few names
	// are compared in a list; a map is made only for a large object.
	seen := func(f *frame, name string) bool {
		if f.set != nil {
			if f.set[name] {
				return true
			}
			f.set[name] = true
			return false
		}
		if slices.Contains(f.names, name) {
			return true
		}
		if f.names = append(f.names, name); len(f.names) > 16 {
			f.set = make(map[string]bool, 2*len(f.names))
			for _, n := range f.names {
				f.set[n] = true
			}
			f.names = nil
		}
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error json.Unmarshal reports
		}
		n := len(stack)
		if n > 0 && stack[n-1].wantKey {
			if name, ok := tok.(string); ok {
				top := &stack[n-1]
				if seen(top, name) {
					// The path is built only now, from the names of the
					// members the objects on the stack are reading.
					path := ""
					for _, f := range stack[:n-1] {
						if f.object {
							path = joinPath(path, f.last)
						}
					}
					return reject(ReasonNotJSON, joinPath(path, name),
						"member %s appears twice in one object (I-JSON, RFC 7493: member names are unique)", quoteName(name))
				}
				top.last, top.wantKey = name, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			object := tok == json.Delim('{')
			stack = append(stack, frame{object: object, wantKey: object})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:n-1]
			ended()
		default:
			ended()
		}
	}
}

// joinPath is the JSON path of member name in the value at path.
func joinPath(path, name string) string {
	if path == "" {
		return quoteName(name)
	}
	return path + "." + quoteName(name)
}

// quoteName is a member name as a reject names it: as is when it is a
// plain identifier, else quoted, and cut to 32 bytes.
func quoteName(name string) string {
	const max = 32
	if longDigitRun(name) || citizenid.MaskText(name) != name {
		return maskedName
	}
	cut := len(name) > max
	if cut {
		name = strings.ToValidUTF8(name[:max], "")
	}
	if longDigitRun(name) {
		return maskedName
	}
	plain := name != ""
	for i := range len(name) {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			plain = false
			break
		}
	}
	if !plain {
		name = strconv.Quote(name)
	}
	if cut {
		name += "…"
	}
	return name
}

// QuoteValue is an attribute's value as a reject, or a tool's message
// about a rejected event, quotes it: quoted and cut to 64 bytes, unless
// it may hold a citizen ID (from a column mapped to the wrong attribute)
// — 15 or more digits in a row, or anything citizenid.MaskText masks
// (full-width digits, an ID written in groups) —, then maskedValue. The values of
// source and type are checked against lists, so the value itself is
// what a reject has to show.
func QuoteValue(v string) string {
	const max = 64
	if longDigitRun(v) || citizenid.MaskText(v) != v {
		return maskedValue
	}
	if len(v) > max {
		return strconv.Quote(strings.ToValidUTF8(v[:max], "")) + "…"
	}
	return strconv.Quote(v)
}

// maskedValue stands in for an attribute value that may hold a citizen
// ID (see QuoteValue and maskedName).
const maskedValue = "(a value holding 15 or more digits)"

// maskedName stands in a reject for a member name that may be a citizen
// ID: rejects reach the DLQ, logs and `pophub dlq list`, which must not
// carry an ID that a producer happened to use as a name.
const maskedName = "(a name holding 15 or more digits)"

// maskName is name as a reject's field names it: as is, unless it holds
// 15 or more digits in a row (perhaps a citizen ID), then maskedName.
// Unlike quoteName it neither quotes nor cuts, so that "data.Reason" stays
// the field a producer can search its code for.
func maskName(name string) string {
	if longDigitRun(name) || citizenid.MaskText(name) != name {
		return maskedName
	}
	return name
}

// longDigitRun reports whether s holds 15 or more digits in a row.
func longDigitRun(s string) bool {
	run := 0
	for i := range len(s) {
		if s[i] >= '0' && s[i] <= '9' {
			if run++; run >= 15 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// checkDataNames rejects a data member whose name is a field of typ's
// payload in another case only. encoding/json matches names
// case-insensitively, so {"Reason":"other"} would be read as reason where
// the JSON Schemas (additionalProperties: false) reject it; field names
// are case-sensitive, as attribute names are. Data that is not an object
// is left to the decoder, which says what it must be.
func checkDataNames(typ Type, raw json.RawMessage) *RejectError {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return nil
	}
	names := dataNames[typ]
	bad, found := "", false
	for name := range members {
		if !names[name] && folds(names, name) && (!found || name < bad) {
			bad, found = name, true
		}
	}
	if !found {
		return nil // an unknown name the decoder rejects, if any
	}
	return reject(ReasonInvalidData, "data."+maskName(bad), "unknown field (field names are case-sensitive)")
}

// folds reports whether name equals one of names under Unicode case
// folding, as encoding/json would match it.
func folds(names map[string]bool, name string) bool {
	for n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// dataNames are the JSON names of each payload's fields, by event type.
var dataNames = func() map[Type]map[string]bool {
	m := make(map[Type]map[string]bool, len(payloadTypes))
	for t, rt := range payloadTypes {
		rt = rt.Elem()
		names := make(map[string]bool, rt.NumField())
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				names[name] = true
			}
		}
		m[t] = names
	}
	return m
}()

// checkNames rejects a member whose name is not a CloudEvents attribute
// name. Of several, it names the first in byte order, so that the reject
// does not depend on map order.
func checkNames(members map[string]json.RawMessage) *RejectError {
	bad, found := "", false
	for name := range members {
		if !attributeName(name) && (!found || name < bad) {
			bad, found = name, true
		}
	}
	if !found {
		return nil
	}
	const max = 32 // bytes of the name quoted in the detail
	if len(bad) > max {
		bad = strings.ToValidUTF8(bad[:max], "") + "…"
	}
	if bad == "data_base64" {
		// What the CloudEvents SDKs write for data given as bytes.
		return reject(ReasonNotCloudEvent, "", "member %q is not supported: send the data as a JSON object in data", bad)
	}
	if longDigitRun(bad) {
		return reject(ReasonNotCloudEvent, "", "member %s is not a CloudEvents attribute name (1 to 20 lower-case letters and digits; names are case-sensitive)", maskedName)
	}
	return reject(ReasonNotCloudEvent, "", "member %q is not a CloudEvents attribute name (1 to 20 lower-case letters and digits; names are case-sensitive)", bad)
}

// attributeName reports whether name is a CloudEvents attribute name: 1 to
// 20 lower-case ASCII letters and digits (CloudEvents 1.0, "Attribute
// Naming Convention"; 20 is a SHOULD there, a rule here). The envelope
// schema states the same rule as propertyNames.
func attributeName[S ~string | ~[]byte](name S) bool {
	if len(name) == 0 || len(name) > 20 {
		return false
	}
	for i := range len(name) {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func deref(p *string) (string, bool) {
	if p == nil {
		return "", false
	}
	return *p, true
}

// checkEnvelope applies the envelope rules to the attributes of in. It
// returns the event filled as far as the checks got (with a reject), or the
// event without Payload, the catalogue entry of its type and the time the
// data is to be validated at.
func checkEnvelope(in Input, a *attrs) (Event, typeSpec, time.Time, *RejectError) {
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	var ev Event
	switch {
	case !a.hasSpecVersion:
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "specversion", "required attribute is missing")
	case a.specVersion != SpecVersion:
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "specversion", "must be %q", SpecVersion)
	case !a.hasID || a.id == "":
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "id", "required attribute is missing or empty")
	case utf8.RuneCountInString(a.id) > MaxIDLength:
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "id", "longer than %d characters", MaxIDLength)
	case !a.hasSource || a.source == "":
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "source", "required attribute is missing or empty")
	case !a.hasType || a.typ == "":
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "type", "required attribute is missing or empty")
	case !a.hasTime:
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "time", "required attribute is missing")
	case !a.hasSubject:
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "subject", "required attribute is missing")
	case a.hasDataContentType && !jsonContentType(a.dataContentType):
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "datacontenttype", "must be application/json, its parameters without control characters")
	case len(a.data) == 0 || string(a.data) == "null":
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "data", "required attribute is missing")
	}
	t, ok := a.timeOf()
	if !ok {
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "time", "not an RFC 3339 timestamp")
	}
	// A change cannot have taken effect in the future (a day of clock skew
	// is allowed): one that claims to would win every later change of its
	// section. Nor before 1850, judged both as written (the envelope
	// schema's pattern reads the year in the text) and as kept, in CST:
	// 1850-01-01T00:00:00+23:00 is kept as 1849-12-31T09:00:00+08:00,
	// which the hub could not write back and accept again.
	if t.After(now.Add(MaxClockSkew)) || t.Year() < 1850 || t.In(cst).Year() < 1850 {
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "time", "must not lie in the future or before 1850")
	}
	if !printable(a.id) {
		return ev, typeSpec{}, now, reject(ReasonNotCloudEvent, "id", "must not contain control characters")
	}
	// Times are kept to the microsecond, PostgreSQL's resolution, so that
	// both stores order, answer and record the same instant: a finer
	// fraction would show in memdb and in the golden record's provenance
	// but not in PostgreSQL's history. They are kept in China Standard
	// Time (CST) for the same reason: PostgreSQL keeps no offset.
	ev = Event{SpecVersion: SpecVersion, ID: a.id, Source: Source(a.source), Type: Type(a.typ),
		Time: t.Truncate(time.Microsecond).In(cst), DataContentType: "application/json", Data: a.data}
	if !ev.Source.Valid() {
		return ev, typeSpec{}, now, reject(ReasonSourceMismatch, "source", "%s is not a department source", QuoteValue(a.source))
	}
	if in.Topic != "" && SourceOfTopic(in.Topic) != ev.Source {
		return ev, typeSpec{}, now, reject(ReasonSourceMismatch, "source", "source %q does not match topic %q", ev.Source, in.Topic)
	}
	spec, ok := catalogue[ev.Type]
	if !ok {
		return ev, typeSpec{}, now, reject(ReasonUnknownType, "type", "%s is not in the catalogue", QuoteValue(a.typ))
	}
	if spec.source != ev.Source {
		return ev, typeSpec{}, now, reject(ReasonSourceMismatch, "type", "type %q belongs to source %q, not %q", ev.Type, spec.source, ev.Source)
	}
	id, err := citizenid.ParseAt(a.subject, now)
	if err != nil {
		return ev, typeSpec{}, now, reject(ReasonInvalidSubject, "subject", "%v", errors.Unwrap(err))
	}
	ev.Subject = id
	switch {
	case in.Key == nil && in.FromKafka:
		return ev, typeSpec{}, now, reject(ReasonKeyMismatch, "subject", "record has no key; it must be the subject")
	case in.Key != nil && string(in.Key) != string(id):
		return ev, typeSpec{}, now, reject(ReasonKeyMismatch, "subject", "record key does not equal the subject")
	}
	if rej := checkTimeLived(id, ev.Time); rej != nil {
		return ev, typeSpec{}, now, rej
	}
	return ev, spec, now, nil
}

// checkTimeLived refuses an event time whose date in China (UTC+8), where
// the hub dates every change, cannot be one of the subject's life: a
// placeholder date before the birth date the citizen ID carries, or one
// more than a year before it, as the dates of the subject's life in data
// are refused (unlived). The time dates the change everywhere: a hukou
// registered at the Unix epoch, 1970-01-01T00:00:00Z, which systems write
// for a time they do not know, would count a person born in 2000 in every
// statistic since 1970, and a marriage, a property or a business would
// hold "since" a day before the birth. Every type of the catalogue is a
// change to the subject's own life, so none is exempt; a posthumous
// child's inheritance of a home, in force from the death (民法典 第十六条,
// 第二百三十条), is a year's grace away from the birth at most.
func checkTimeLived(id citizenid.ID, t time.Time) *RejectError {
	var buf [len(time.DateOnly)]byte
	day := t.In(cst).AppendFormat(buf[:0], time.DateOnly)
	switch placeholderDate, early := unlived(id, string(day)); {
	case placeholderDate:
		return reject(ReasonInvalidData, "time", "is on a placeholder date in China Standard Time (1900-01-01, 1970-01-01: the Unix epoch) before the subject's birth date (digits 7–14 of the citizen ID): send the time the change took effect")
	case early:
		return reject(ReasonInvalidData, "time", "lies, in China Standard Time, more than a year before the subject's birth date (digits 7–14 of the citizen ID): send the time the change took effect")
	}
	return nil
}

func dataDecodeError(err error) *RejectError {
	var ce *citizenid.Error
	if errors.As(err, &ce) {
		return reject(ReasonInvalidData, "data.spouse_id", "%v", ce.Reason)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := "data"
		if te.Field != "" {
			field += "." + te.Field
		}
		return reject(ReasonInvalidData, field, "must be a JSON %s", jsonKind(te.Type.Kind().String()))
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return reject(ReasonInvalidData, "data."+maskName(strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)), "unknown field")
	}
	return reject(ReasonInvalidData, "data", "must be a JSON object: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	case "float64", "int", "int64":
		return "number"
	case "ptr":
		return "value"
	}
	return k
}

// parseTime parses an RFC 3339 timestamp. time.Parse also takes a comma
// before the fraction of a second, a one-digit hour (its layout's "15"
// reads one digit or two) and zone offsets such as +08:60 or +24:00, which
// RFC 3339 (and JSON Schema's date-time) do not allow; the hub could not
// even write a +24:00 time back (time.Time.MarshalJSON refuses it), so
// history and merge state would fail to encode and the event would block
// its partition instead of going to the DLQ.
func parseTime(s string) (time.Time, bool) {
	if !rfc3339Shape(s) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	// time.Parse succeeded, so s ends in Z or in an offset ±hh:mm.
	if off := s[len(s)-6:]; s[len(s)-1] != 'Z' && (off[1:3] > "23" || off[4:6] > "59") {
		return time.Time{}, false
	}
	return t, true
}

// rfc3339Shape reports whether s is laid out as an RFC 3339 date-time:
// YYYY-MM-DDTHH:MM:SS with every field two digits (four for the year), an
// optional fraction of one or more digits after a dot, then Z or ±HH:MM.
// It checks the layout only; time.Parse judges the values.
func rfc3339Shape(s string) bool {
	const layout = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(layout)+1 {
		return false
	}
	for i := 0; i < len(layout); i++ {
		if layout[i] == 'd' && !isDigit(s[i]) || layout[i] != 'd' && s[i] != layout[i] {
			return false
		}
	}
	rest := s[len(layout):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && isDigit(rest[1]) && isDigit(rest[2]) &&
		rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// cst is China Standard Time, UTC+8 (see CST). It has no name, as the
// zone time.Parse and time.Time.UnmarshalJSON give "+08:00" has none.
var cst = time.FixedZone("", 8*3600)

// CST returns China Standard Time, the zone every event time is kept and
// rendered in: Decode moves each event's time into it (same instant, same
// sub-second digits), and stores give event times back in it, so history,
// provenance and notifications read alike whatever offset a department
// wrote and whichever store holds them (PostgreSQL's timestamptz keeps the
// instant, not the offset).
//
// It is a fixed +08:00, not time.LoadLocation("Asia/Shanghai"): China kept
// daylight saving time from 1986 to 1991, so that zone gives +09:00 to
// summer times of those years (Clock uses it for the date of an instant).
// It is nameless (Format's "MST" writes +0800): the
// hub keeps event times as RFC 3339 text too (merge state, snapshots),
// which carries the offset only, and a time read back from that text
// should be the time that was written, reflect.DeepEqual included.
func CST() *time.Location { return cst }

// VersionedEventID reports whether id has the form of the ids
// publisher.EventID derives since it writes the version into them,
// "<source>-<24 hex digits>-<16 hex digits>". At a tie (the same time and
// source) such an id outranks any other: ids derived before, without the
// version, sort at random against them, and a correction sent after the
// upgrade, at the unchanged time of the version it corrects, must win.
func VersionedEventID(id string) bool {
	const tail = 1 + 24 + 1 + 16
	n := len(id)
	if n <= tail || id[n-tail] != '-' || id[n-17] != '-' {
		return false
	}
	for i := n - tail + 1; i < n; i++ {
		if c := id[i]; i != n-17 && (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Zone is the time zone a department names for times written without an
// offset (an import mapping's timezone, a CDC mapping's time_zone): CST
// for no name and for the names of China's time (Asia/Shanghai and its
// aliases), so that a date alone stays that date in the hub, which dates
// every change by its CST day, also in the summers of 1986–1991 that the
// tz database keeps at +09:00; any other name as time.LoadLocation gives
// it.
func Zone(name string) (*time.Location, error) {
	switch name {
	case "", "Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "PRC":
		return cst, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("loading time zone %q: %w", name, err)
	}
	return loc, nil
}

// MaxClockSkew is how far in the future an event's time may lie.
const MaxClockSkew = 24 * time.Hour

// jsonContentType reports whether s is application/json, with or without
// parameters. Parameters are not read (the hub keeps application/json),
// but control characters among them are refused, as the envelope schema
// does: a line break would split a header line the type is copied to.
// A null datacontenttype never gets here: like every null attribute it is
// absent, as the CloudEvents JSON format has it.
func jsonContentType(s string) bool {
	return (s == "application/json" || strings.HasPrefix(s, "application/json;")) && printable(s)
}

// printable reports whether s has no control characters, C0, DEL or C1
// (U+0000–U+001F, U+007F–U+009F, Unicode's Cc): stores and headers cannot
// hold some of them, NUL above all, and a C1 control such as U+0085 (NEL)
// breaks lines and terminals as surely as a C0 one. The JSON Schemas'
// patterns refuse the same range.
func printable(s string) bool {
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// encodeStd is Encode written with encoding/json: the reference
// Event.AppendJSON is tested against, and what it falls back to for what
// it does not handle itself (data that is not compact JSON, a Payload
// outside the catalogue, an area that is not a finite number).
func encodeStd(ev Event) ([]byte, error) {
	if ev.SpecVersion == "" {
		ev.SpecVersion = SpecVersion
	}
	if ev.DataContentType == "" {
		ev.DataContentType = "application/json"
	}
	if ev.Data == nil && ev.Payload != nil {
		b, err := json.Marshal(ev.Payload)
		if err != nil {
			return nil, fmt.Errorf("encoding data of %s: %w", ev.Type, err)
		}
		ev.Data = b
	}
	return json.Marshal(struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          Source          `json:"source"`
		Type            Type            `json:"type"`
		Subject         string          `json:"subject"`
		Time            string          `json:"time"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
	}{ev.SpecVersion, ev.ID, ev.Source, ev.Type, string(ev.Subject), wireTime(ev.Time).Format(time.RFC3339Nano), ev.DataContentType, ev.Data})
}
