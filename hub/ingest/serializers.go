package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
	"github.com/pophub/pophub/schemas/citizenid"
)

// serializerFraming explains a reject whose record holds a good event or
// key wrapped by a Kafka serializer's default framing, which the
// decoder's own words would not name: a Confluent Schema Registry
// serializer's magic byte and schema id before the value (the decoder
// says the value is not JSON), a Kafka Connect JsonConverter's
// {"schema":…,"payload":…} envelope (it says specversion is missing), or
// the citizen ID written as a JSON string, in quotes (it says the key
// does not equal the subject). It returns nil for any other reject. It
// runs only on rejects, so the common record pays nothing for it.
func serializerFraming(re *schemas.RejectError, key, value []byte, subject citizenid.ID) *schemas.RejectError {
	switch re.Reason {
	case schemas.ReasonNotJSON:
		if utf16(value) {
			return &schemas.RejectError{Reason: schemas.ReasonNotJSON, Detail: "the value is UTF-16 text (a zero byte every other byte): " +
				"send the event encoded as UTF-8"}
		}
		// Magic byte 0, a 4-byte big-endian schema id, then the
		// serialized value: JSON (which starts with "{"), or Avro or
		// Protobuf. Registries number schemas from 1 upwards, so an id
		// in the millions is taken for no framing.
		if len(value) > 5 && value[0] == 0 {
			id := binary.BigEndian.Uint32(value[1:5])
			if isJSON := bytes.HasPrefix(bytes.TrimLeft(value[5:], " \t\r\n"), []byte("{")); isJSON || (id > 0 && id < 1<<20) {
				return &schemas.RejectError{Reason: schemas.ReasonNotJSON, Detail: fmt.Sprintf(
					"the value starts with Schema Registry framing (magic byte 0, schema id %d): send the event's JSON alone, "+
						"with a string or byte-array serializer rather than a Schema Registry one", id)}
			}
		}
	case schemas.ReasonNotCloudEvent:
		var envelope map[string]json.RawMessage
		if json.Unmarshal(value, &envelope) != nil || len(envelope) != 2 {
			return nil
		}
		if _, ok := envelope["schema"]; !ok {
			return nil
		}
		if payload, ok := envelope["payload"]; ok && bytes.Contains(payload, []byte(`"specversion"`)) {
			return &schemas.RejectError{Reason: schemas.ReasonNotCloudEvent, Field: "payload", Detail: "the value is a Kafka Connect " +
				`JsonConverter envelope {"schema":…,"payload":…} around the event: set value.converter.schemas.enable=false ` +
				"so that the event is sent alone"}
		}
	case schemas.ReasonKeyMismatch:
		if n := len(key); n > 2 && key[0] == '"' && key[n-1] == '"' && string(key[1:n-1]) == string(subject) {
			return &schemas.RejectError{Reason: schemas.ReasonKeyMismatch, Field: "subject", Detail: "the record key is the subject " +
				"in JSON quotes: send the 18 characters of the citizen ID alone as the key, with a string serializer rather than a JSON one"}
		}
	}
	return nil
}

// utf16 reports a value that looks like UTF-16 text: a byte order mark
// of UTF-16, or a zero byte every other byte at its start, as JSON's
// ASCII characters are in UTF-16 (Windows tools and .NET's Encoding.Unicode
// write it so).
func utf16(v []byte) bool {
	if len(v) >= 2 && (v[0] == 0xFE && v[1] == 0xFF || v[0] == 0xFF && v[1] == 0xFE) {
		return true
	}
	if len(v) < 4 {
		return false
	}
	be := v[0] == 0 && v[1] != 0 && v[2] == 0 && v[3] != 0
	le := v[0] != 0 && v[1] == 0 && v[2] != 0 && v[3] == 0
	return be || le
}

// clockBehind explains a reject for a time in the future when the hub's
// own clock may be the culprit: the record's Kafka timestamp is later
// than the hub's clock by over a minute, and the event's time would pass
// by that timestamp. A hub host without NTP, or a virtual machine
// restored with an old clock, would otherwise see every current event
// rejected with words that blame the department. The timestamp is the
// producer's clock as kafka-go reads it (it ignores a topic's
// LogAppendTime), so the words name both clocks: either may be wrong. It
// returns nil for any other reject.
func clockBehind(re *schemas.RejectError, m kafka.Message, value []byte, now time.Time) *schemas.RejectError {
	if re.Reason != schemas.ReasonNotCloudEvent || re.Field != "time" || m.Time.IsZero() || m.Time.Sub(now) < time.Minute {
		return nil
	}
	var ev struct {
		Time string `json:"time"`
	}
	if json.Unmarshal(value, &ev) != nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, ev.Time)
	if err != nil || !t.After(now.Add(schemas.MaxClockSkew)) || t.After(m.Time.Add(schemas.MaxClockSkew)) {
		return nil
	}
	return &schemas.RejectError{Reason: re.Reason, Field: re.Field, Detail: fmt.Sprintf(
		"%s: by the hub's clock, which reads %s, %s behind this record's Kafka timestamp %s, by which the event's time is no future: "+
			"either the hub host's clock is behind or the producer's is ahead; check the hub's against NTP, and if it was the hub's, "+
			"set it right and replay these rejects (pophub dlq replay)",
		re.Detail, now.UTC().Format(time.RFC3339), m.Time.Sub(now).Round(time.Second), m.Time.UTC().Format(time.RFC3339))}
}
