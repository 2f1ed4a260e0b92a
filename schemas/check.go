package schemas

import (
	"bytes"
	"reflect"
	"time"
)

// CheckEncoded judges an event the way Decode judges its encoding: in.Value
// must be ev's encoding (Event.AppendJSON or Encode), and the result is the
// error Decode(in) returns, or nil. A publisher that builds events from
// typed payloads uses it to validate locally exactly as the hub will,
// without parsing back the JSON it has just written: when the encoding is
// known to read back as ev itself (a Payload of its type's struct, no raw
// Data, text that is valid UTF-8, a time RFC 3339 writes exactly), the
// envelope rules and the payload's validation run on ev directly, which
// costs a fifth of a decode. Anything else is decoded.
func CheckEncoded(ev *Event, in Input) error {
	if !readsBackAsIs(ev, in.Value) {
		_, err := Decode(in)
		return err
	}
	a := attrs{
		specVersion: ev.SpecVersion, hasSpecVersion: true,
		id: ev.ID, hasID: true,
		source: string(ev.Source), hasSource: true,
		typ: string(ev.Type), hasType: true,
		subject: string(ev.Subject), hasSubject: true,
		hasTime: true, parsedTime: ev.Time, timeParsed: true,
		dataContentType: ev.DataContentType, hasDataContentType: true,
		data: encodedObject,
	}
	if a.specVersion == "" {
		a.specVersion = SpecVersion
	}
	if a.dataContentType == "" {
		a.dataContentType = "application/json"
	}
	_, _, now, rej := checkEnvelope(in, &a)
	if rej != nil {
		return rej
	}
	if reflect.TypeOf(ev.Payload) != payloadTypes[ev.Type] {
		// The hub reads the data into its type's struct, not this one.
		_, err := Decode(in)
		return err
	}
	v := validator{now: now}
	ev.Payload.validate(&v)
	if v.err != nil {
		return v.err
	}
	return nil
}

// encodedObject stands for the data attribute of an encoded payload in the
// envelope check, which only asks whether there is one.
var encodedObject = []byte("{}")

// readsBackAsIs reports whether Decode of value, ev's encoding, would see
// exactly ev's attributes and payload fields.
func readsBackAsIs(ev *Event, value []byte) bool {
	if ev.Data != nil || ev.Payload == nil {
		return false
	}
	if p := reflect.ValueOf(ev.Payload); p.Kind() != reflect.Pointer || p.IsNil() {
		return false
	}
	// RFC 3339 writes a four-digit year and an offset in whole minutes,
	// within a day: anything else reads back as another time, or not at all.
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		return false
	}
	if _, off := ev.Time.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return false
	}
	// The encoder writes invalid UTF-8 as U+FFFD, which reads back as
	// another string. (A string holding a backslash and "ufffd" lands here
	// too, and is simply decoded.)
	return !bytes.Contains(value, []byte(`\ufffd`))
}

// timeOf is the time attribute a check judges: parsed from the wire, or
// given as is by CheckEncoded.
func (a *attrs) timeOf() (time.Time, bool) {
	if a.timeParsed {
		return a.parsedTime, true
	}
	return parseTime(a.time)
}
