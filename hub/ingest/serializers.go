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
		// Magic byte 0, a 4-byte big-endian schema id, then the
		// serialized value (JSON here, or Avro or Protobuf).
		if len(value) > 5 && value[0] == 0 {
			return &schemas.RejectError{Reason: schemas.ReasonNotJSON, Detail: fmt.Sprintf(
				"the value starts with Schema Registry framing (magic byte 0, schema id %d): send the event's JSON alone, "+
					"with a string or byte-array serializer rather than a Schema Registry one", binary.BigEndian.Uint32(value[1:5]))}
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

// clockBehind explains a reject for a time in the future when the hub's
// own clock is the likely culprit: the record's Kafka timestamp (the
// broker's append time on the source topics the hub creates) is later
// than the hub's clock by over a minute, and the event's time would pass
// by that timestamp. A hub host without NTP, or a virtual machine
// restored with an old clock, would otherwise see every current event
// rejected with words that blame the department. It returns nil for any
// other reject.
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
		"%s: by the hub's clock, which reads %s, %s behind this record's Kafka timestamp %s; "+
			"if the hub host's clock is wrong, set it right (NTP) and replay these rejects (pophub dlq replay)",
		re.Detail, now.UTC().Format(time.RFC3339), m.Time.Sub(now).Round(time.Second), m.Time.UTC().Format(time.RFC3339))}
}
