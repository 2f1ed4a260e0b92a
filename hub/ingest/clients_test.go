package ingest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pophub/pophub/schemas"
)

// TestOtherClientsRecords: records as Windows tools and the CloudEvents
// SDKs' Kafka serializers write them. An event after a UTF-8 byte order
// mark is applied, as the gateway applies it, and without the mark in the
// raw event the store keeps; a record in binary content mode (attributes
// in ce_* headers, the data alone as the value) is rejected saying so,
// rather than as an event whose data's members are unknown attributes,
// while an event in structured mode that also carries such headers keeps
// its own reject.
// A record without a value (a tombstone) is rejected saying so, and so
// are good events wrapped by Kafka serializers' defaults: a Schema
// Registry serializer's magic byte and schema id, a Kafka Connect
// JsonConverter's schema envelope, a JSON serializer's quotes around the
// key, UTF-16 text; a binary value that merely starts with a zero byte is
// not taken for Schema Registry framing. Each reject reaches the DLQ as it was sent, mark included.
func TestOtherClientsRecords(t *testing.T) {
	topic := schemas.Topic(schemas.Marriage)
	event := func(id, spouse string) string {
		return cloudEvent(id, "marriage", "marriage.registered", idA, `{"spouse_id":"`+spouse+`"}`)
	}
	bom := "\xef\xbb\xbf"
	binaryHeaders := []kafka.Header{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("m-bin")},
		{Key: "ce_source", Value: []byte("marriage")}, {Key: "ce_type", Value: []byte("marriage.registered")},
		{Key: "ce_subject", Value: []byte(idA)}, {Key: "content-type", Value: []byte("application/json")}}
	records := []struct {
		name    string
		value   string
		headers []kafka.Header
		reason  string // "" when applied
		field   string
		detail  string
		key     string // idA when ""
	}{
		{"event after a byte order mark", bom + event("m-bom", idB), nil, "", "", "", ""},
		{"invalid event after a byte order mark", bom + event("m-bad", idA), nil, schemas.ReasonInvalidData, "data.spouse_id", "", ""},
		{"binary content mode", `{"spouse_id":"` + idB + `"}`, binaryHeaders, schemas.ReasonNotCloudEvent, "ce_specversion", "binary content mode", ""},
		{"binary content mode, data not JSON", `<lease id="1"/>`, binaryHeaders, schemas.ReasonNotCloudEvent, "ce_specversion", "binary content mode", ""},
		{"structured event with ce_ headers", event("m-both", idB), binaryHeaders, "", "", "", ""},
		{"invalid structured event with ce_ headers", event("m-both-bad", idA), binaryHeaders, schemas.ReasonInvalidData, "data.spouse_id", "", ""},
		{"tombstone", "", nil, schemas.ReasonNotJSON, "", "tombstone", ""},
		{"Schema Registry framing", "\x00\x00\x00\x01\x07" + event("m-sr", idB), nil, schemas.ReasonNotJSON, "", "Schema Registry framing (magic byte 0, schema id 263)", ""},
		{"Schema Registry framing before Avro", "\x00\x00\x00\x00\x2a\x02\x24\x6d\x2d\x61\x76\x72\x6f", nil, schemas.ReasonNotJSON, "", "Schema Registry framing (magic byte 0, schema id 42)", ""},
		{"UTF-16BE event", utf16BE(event("m-utf16", idB)), nil, schemas.ReasonNotJSON, "", "UTF-16", ""},
		{"binary value starting with a zero byte", "\x00\xc3\x28\xa0\xa1\xe2\x28\xa1", nil, schemas.ReasonNotJSON, "", "not valid UTF-8", ""},
		{"Kafka Connect JsonConverter envelope", `{"schema":{"type":"string","optional":false},"payload":` + event("m-connect", idB) + `}`, nil,
			schemas.ReasonNotCloudEvent, "payload", "value.converter.schemas.enable=false", ""},
		{"key in JSON quotes", event("m-quoted", idB), nil, schemas.ReasonKeyMismatch, "subject", "the subject in JSON quotes", `"` + idA + `"`},
		{"another key", event("m-other-key", idB), nil, schemas.ReasonKeyMismatch, "subject", "record key does not equal the subject", idB},
	}
	keyOf := func(k string) []byte {
		if k == "" {
			return []byte(idA)
		}
		return []byte(k)
	}

	for _, r := range records {
		d := decodeChunk([]kafka.Message{{Topic: topic, Key: keyOf(r.key), Value: []byte(r.value), Headers: r.headers}})
		if r.reason == "" {
			if len(d.inputs) != 1 || bytes.HasPrefix(d.inputs[0].Raw, []byte(bom)) || !strings.HasPrefix(string(d.inputs[0].Raw), "{") {
				t.Errorf("%s: inputs %d; want one, its raw event without the mark", r.name, len(d.inputs))
			}
		}
	}

	k := broker(t)
	var msgs []kafka.Message
	for _, r := range records {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: keyOf(r.key), Value: []byte(r.value), Headers: r.headers})
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addr()), Balancer: toPartition0, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	a := &recordingApplier{}
	c, err := New(Config{Brokers: []string{k.Addr()}, GroupID: "clients"}, a)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	waitUntil(t, "every record consumed", func() bool { return c.Counts().Consumed == int64(len(records)) })
	stop()
	for _, id := range []string{"m-bom", "m-both"} {
		if a.ids[id] != 1 {
			t.Errorf("event %s applied %d times, want 1", id, a.ids[id])
		}
	}
	var rejected []int
	for i, r := range records {
		if r.reason != "" {
			rejected = append(rejected, i)
		}
	}
	// The DLQ copies are keyed as their records: in order within a
	// partition, not across them. Each record's value is its own.
	dlq := map[string]kafka.Message{}
	for _, m := range readTopic(t, k.Addr(), schemas.DLQTopic, len(rejected)) {
		dlq[string(m.Value)] = m
	}
	for _, i := range rejected {
		r := records[i]
		m, ok := dlq[r.value]
		if !ok {
			t.Errorf("%s: no DLQ copy with the record's value %q", r.name, r.value)
			continue
		}
		if !bytes.Equal(m.Key, keyOf(r.key)) {
			t.Errorf("%s: DLQ key %q, want the record's %q", r.name, m.Key, keyOf(r.key))
		}
		if header(m, HeaderReason) != r.reason || header(m, HeaderField) != r.field || !strings.Contains(header(m, HeaderError), r.detail) {
			t.Errorf("%s: DLQ reason %q field %q error %q; want %s, %s, saying %q", r.name,
				header(m, HeaderReason), header(m, HeaderField), header(m, HeaderError), r.reason, r.field, r.detail)
		}
	}
}

// utf16BE is s (ASCII) in UTF-16, big-endian, without a byte order mark.
func utf16BE(s string) string {
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, 0, s[i])
	}
	return string(b)
}

// TestRejectBlamesABehindClock: on a hub whose clock is days behind (no
// NTP in the data centre, a virtual machine restored with an old clock),
// every current event lies "in the future" by the hub's clock, and the
// reject said only that, blaming the department. When the record's Kafka
// timestamp says the event's time is no future, the reject now names the
// two clocks (the timestamp is the producer's, which may be the one
// ahead); an event in the future by both keeps the plain reject.
func TestRejectBlamesABehindClock(t *testing.T) {
	real := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	at := func(t time.Time) string {
		return `{"specversion":"1.0","id":"m-1","source":"marriage","type":"marriage.registered","subject":"` + idA +
			`","time":"` + t.Format(time.RFC3339) + `","datacontenttype":"application/json","data":{"spouse_id":"` + idB + `"}}`
	}
	future := &schemas.RejectError{Reason: schemas.ReasonNotCloudEvent, Field: "time", Detail: "must not lie in the future or before 1850"}
	tests := []struct {
		name      string
		hubClock  time.Time
		eventTime time.Time
		recorded  time.Time // the record's Kafka timestamp
		re        *schemas.RejectError
		blames    bool
	}{
		{"hub clock three days behind", real.AddDate(0, 0, -3), real, real, future, true},
		{"event days ahead of every clock", real, real.AddDate(0, 0, 5), real, future, false},
		{"hub behind, event still ahead of the record", real.AddDate(0, 0, -3), real.AddDate(0, 0, 10), real, future, false},
		{"record without a timestamp", real.AddDate(0, 0, -3), real, time.Time{}, future, false},
		{"hub clock seconds behind", real.Add(-30 * time.Second), real.AddDate(0, 0, 2), real, future, false},
		{"another reject", real.AddDate(0, 0, -3), real, real, &schemas.RejectError{Reason: schemas.ReasonNotCloudEvent, Field: "id", Detail: "required attribute is missing"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := kafka.Message{Topic: schemas.Topic(schemas.Marriage), Key: []byte(idA), Value: []byte(at(tc.eventTime)), Time: tc.recorded}
			got := clockBehind(tc.re, m, m.Value, tc.hubClock)
			switch {
			case tc.blames && got == nil:
				t.Fatal("the reject does not name the hub's clock")
			case tc.blames:
				for _, want := range []string{"must not lie in the future", "by the hub's clock, which reads 2026-12-04T09:00:00Z, 72h0m0s behind",
					"either the hub host's clock is behind or the producer's is ahead", "NTP", "pophub dlq replay"} {
					if !strings.Contains(got.Detail, want) {
						t.Errorf("detail %q, want it to say %q", got.Detail, want)
					}
				}
				if got.Reason != tc.re.Reason || got.Field != "time" {
					t.Errorf("reason %s field %s, want %s time", got.Reason, got.Field, tc.re.Reason)
				}
			case got != nil:
				t.Errorf("the reject names the hub's clock: %q", got.Detail)
			}
		})
	}
}
