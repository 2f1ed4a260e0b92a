package schemas

import (
	"bytes"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// CheckEncoded judges an event the way Decode judges its encoding: in.Value
// must be ev's encoding (Event.AppendJSON or Encode), and the result is the
// error Decode(in) returns, or nil. A publisher or an importer that builds
// events uses it to validate locally exactly as the hub will, without
// parsing back the envelope it has just written: when the encoding is
// known to read back as ev itself (text that is valid UTF-8, a time RFC
// 3339 writes exactly), the envelope rules run on ev directly. A Payload of
// its type's struct is then validated as it is, at a fifth of a decode;
// raw Data, which the encoding carries verbatim, is read into its type's
// struct as Decode reads it. Anything else is decoded.
//
// A string of ev that is not UTF-8 is refused as not_json, naming it: the
// encoding carries U+FFFD in place of its bad bytes, which the hub would
// accept as other text (ids "ps-\xfe" and "ps-\xff" both as "ps-\uFFFD",
// the second then dropped as a duplicate; a GBK name stored garbled),
// where the same bytes sent raw are not_json.
func CheckEncoded(ev *Event, in Input) error {
	if rej := checkEventText(ev, in.Value); rej != nil {
		return rej
	}
	typed := readsBackAsIs(ev, in.Value)
	if !typed && !rawReadsBack(ev, in.Value) {
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
	if !typed {
		a.data = ev.Data
	}
	if a.specVersion == "" {
		a.specVersion = SpecVersion
	}
	if a.dataContentType == "" {
		a.dataContentType = "application/json"
	}
	checked, spec, now, rej := checkEnvelope(in, &a)
	if rej != nil {
		return rej
	}
	data := ev.Payload
	switch {
	case typed && reflect.TypeOf(ev.Payload) != payloadTypes[ev.Type]:
		// The hub reads the data into its type's struct, not this one.
		_, err := Decode(in)
		return err
	case !typed:
		data = spec.new()
		if ds := (scanner{b: ev.Data}); !ds.data(data) {
			_, err := Decode(in) // what the scanner leaves to encoding/json
			return err
		}
	}
	v := validator{now: now, subject: ev.Subject, at: checked.Time}
	data.validate(&v)
	if v.err != nil {
		return v.err
	}
	return nil
}

// checkEventText refuses ev, whose encoding is value, when one of its
// string attributes or payload strings is not UTF-8. Only an encoding that
// holds the escape \ufffd can come from such a string (the encoder writes
// U+FFFD itself unescaped), so the others cost one scan of value.
func checkEventText(ev *Event, value []byte) *RejectError {
	if !bytes.Contains(value, []byte(`\ufffd`)) {
		return nil
	}
	for _, a := range [...]struct{ name, s string }{
		{"specversion", ev.SpecVersion}, {"id", ev.ID}, {"source", string(ev.Source)},
		{"type", string(ev.Type)}, {"subject", string(ev.Subject)}, {"datacontenttype", ev.DataContentType},
	} {
		if !utf8.ValidString(a.s) {
			return notUTF8(a.name)
		}
	}
	if ev.Data != nil || ev.Payload == nil {
		return nil // raw data is written verbatim: Decode judges its bytes
	}
	if field, bad := invalidText(reflect.ValueOf(ev.Payload), "data"); bad {
		return notUTF8(field)
	}
	return nil
}

func notUTF8(field string) *RejectError {
	return reject(ReasonNotJSON, field, "is not valid UTF-8")
}

// invalidText finds the first string in v, a payload or part of one, that
// is not UTF-8, and names it as a JSON path under path: struct fields by
// their json names (embedded structs' fields as their own), list items and
// map entries by their list or map.
func invalidText(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.String:
		return path, !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", false
		}
		return invalidText(v.Elem(), path)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if field, bad := invalidText(v.Index(i), path); bad {
				return field, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if _, bad := invalidText(it.Key(), path); bad {
				return path, true
			}
			if field, bad := invalidText(it.Value(), path); bad {
				return field, true
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-" || (!f.IsExported() && !f.Anonymous):
				continue
			case f.Anonymous && name == "":
				if field, bad := invalidText(v.Field(i), path); bad {
					return field, true
				}
				continue
			case name == "":
				name = f.Name
			}
			if field, bad := invalidText(v.Field(i), path+"."+name); bad {
				return field, true
			}
		}
	}
	return "", false
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
	// The encoder writes invalid UTF-8 as U+FFFD, which reads back as
	// another string. (A string holding a backslash and "ufffd" lands here
	// too, and is simply decoded.)
	return timeReadsBack(ev.Time) && !bytes.Contains(value, []byte(`\ufffd`))
}

// rawReadsBack reports whether Decode of value, ev's encoding, would see
// exactly ev's attributes, and ev.Data as the data attribute: the encoding
// ends with it, as written when it is compact JSON.
func rawReadsBack(ev *Event, value []byte) bool {
	if ev.Data == nil || ev.Payload != nil || !timeReadsBack(ev.Time) {
		return false
	}
	const key = `,"data":`
	n := len(value) - 1 - len(ev.Data) // where the data attribute starts
	if n < len(key) || value[len(value)-1] != '}' || !bytes.Equal(value[n:len(value)-1], ev.Data) ||
		string(value[n-len(key):n]) != key {
		return false
	}
	// The encoding carries the data verbatim, so data that is not text
	// Decode reads (checkText) makes Decode reject the whole value first.
	return !bytes.Contains(value[:n], []byte(`\ufffd`)) && checkText(ev.Data) == nil
}

// timeReadsBack reports whether RFC 3339 writes t exactly: a four-digit
// year and an offset in whole minutes, within a day. Anything else reads
// back as another time, or not at all.
func timeReadsBack(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off%60 == 0 && off > -24*3600 && off < 24*3600
}

// timeOf is the time attribute a check judges: parsed from the wire, or
// given as is by CheckEncoded.
func (a *attrs) timeOf() (time.Time, bool) {
	if a.timeParsed {
		return a.parsedTime, true
	}
	return parseTime(a.time)
}
