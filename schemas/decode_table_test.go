package schemas

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pophub/pophub/schemas/citizenid"
)

var fixedNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// TestDecodeEveryReason: each reject reason, with the field it names.
func TestDecodeEveryReason(t *testing.T) {
	ok := env("marriage", "marriage.registered", validID, `{"spouse_id":"11010519491231002X"}`)
	tests := []struct {
		name, topic, key, value string
		reason, field           string
	}{
		{"empty value", "", "", ``, ReasonNotJSON, ""},
		{"binary", "", "", "\x00\x01", ReasonNotJSON, ""},
		{"JSON null", "", "", `null`, ReasonNotCloudEvent, "specversion"},
		{"JSON string", "", "", `"event"`, ReasonNotCloudEvent, ""},
		{"specversion a number", "", "", strings.Replace(ok, `"1.0"`, `1.0`, 1), ReasonNotCloudEvent, ""},
		{"empty id", "", "", strings.Replace(ok, `"id":"e-1"`, `"id":""`, 1), ReasonNotCloudEvent, "id"},
		{"id of 201 characters", "", "", strings.Replace(ok, `"id":"e-1"`, `"id":"`+strings.Repeat("i", 201)+`"`, 1), ReasonNotCloudEvent, "id"},
		{"missing source", "", "", strings.Replace(ok, `"source":"marriage",`, ``, 1), ReasonNotCloudEvent, "source"},
		{"missing type", "", "", strings.Replace(ok, `"type":"marriage.registered",`, ``, 1), ReasonNotCloudEvent, "type"},
		{"missing subject", "", "", strings.Replace(ok, `"subject":"`+validID+`",`, ``, 1), ReasonNotCloudEvent, "subject"},
		{"time without zone", "", "", strings.Replace(ok, `2026-03-01T00:00:00+08:00`, `2026-03-01T00:00:00`, 1), ReasonNotCloudEvent, "time"},
		{"time before 1850", "", "", strings.Replace(ok, `2026-03-01T00:00:00+08:00`, `1849-12-31T00:00:00Z`, 1), ReasonNotCloudEvent, "time"},
		{"time two days ahead", "", "", strings.Replace(ok, `2026-03-01T00:00:00+08:00`, `2026-11-24T13:00:00Z`, 1), ReasonNotCloudEvent, "time"},
		{"data null", "", "", strings.Replace(ok, `{"spouse_id":"11010519491231002X"}`, `null`, 1), ReasonNotCloudEvent, "data"},
		{"unknown type", "", "", strings.Replace(ok, `marriage.registered`, `marriage.annulled`, 1), ReasonUnknownType, "type"},
		{"source not a department", "", "", strings.Replace(ok, `"source":"marriage"`, `"source":"police"`, 1), ReasonSourceMismatch, "source"},
		{"topic of another source", "pop.events.health", "", ok, ReasonSourceMismatch, "source"},
		{"the DLQ as topic", DLQTopic, "", ok, ReasonSourceMismatch, "source"},
		{"type of another source", "", "", strings.Replace(ok, `"source":"marriage"`, `"source":"health"`, 1), ReasonSourceMismatch, "type"},
		{"subject lower-case x", "", "", env("marriage", "marriage.registered", "11010519491231002x", `{"spouse_id":"`+validID+`"}`), ReasonInvalidSubject, "subject"},
		{"subject born in the future", "", "", env("marriage", "marriage.registered", withCheck("23010220261201001"), `{"spouse_id":"`+validID+`"}`), ReasonInvalidSubject, "subject"},
		{"key of another person", "", "11010519491231002X", ok, ReasonKeyMismatch, "subject"},
		{"empty key", "", "-", ok, ReasonKeyMismatch, "subject"},
		{"bad spouse", "", "", strings.Replace(ok, `11010519491231002X`, `110105194912310021`, 1), ReasonInvalidData, "data.spouse_id"},
		{"unknown data field", "", "", strings.Replace(ok, `{"spouse_id"`, `{"since":"2020-01-01","spouse_id"`, 1), ReasonInvalidData, "data.since"},
		{"data an array", "", "", strings.Replace(ok, `{"spouse_id":"11010519491231002X"}`, `[]`, 1), ReasonInvalidData, "data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := []byte(tc.key)
			switch tc.key {
			case "":
				key = nil
			case "-":
				key = []byte{}
			}
			_, err := Decode(Input{Topic: tc.topic, Key: key, Value: []byte(tc.value), Now: fixedNow})
			re, ok := errors.AsType[*RejectError](err)
			if !ok || re.Reason != tc.reason || (tc.field != "" && re.Field != tc.field) {
				t.Fatalf("Decode = %v, want %s on %q", err, tc.reason, tc.field)
			}
			if ReasonOf(err) != tc.reason || !strings.HasPrefix(err.Error(), tc.reason+": ") {
				t.Errorf("ReasonOf %q, Error %q", ReasonOf(err), err)
			}
			for _, id := range []string{validID, "11010519491231002", "110105194912310021"} {
				if strings.Contains(err.Error(), id) {
					t.Errorf("error %q contains a citizen ID", err)
				}
			}
		})
	}
	if ReasonOf(errors.New("x")) != "" || ReasonOf(nil) != "" || ReasonOf(fmt.Errorf("w: %w", &RejectError{Reason: ReasonNotJSON})) != ReasonNotJSON {
		t.Error("ReasonOf on other errors")
	}
}

// TestDecodeAcceptsVariants: what the decoder tolerates and how it fills
// the event.
func TestDecodeAcceptsVariants(t *testing.T) {
	base := env("housing", "housing.property_registered", validID, `{"property_id":"P1","address_code":"230102001001","acquired":"gift","area_m2":52.5}`)
	tests := []struct {
		name, topic, key, value string
	}{
		{"from Kafka", "pop.events.housing", validID, base},
		{"without topic and key", "", "", base},
		{"no datacontenttype", "", "", strings.Replace(base, `"datacontenttype":"application/json",`, "", 1)},
		{"charset parameter", "", "", strings.Replace(base, `"application/json"`, `"application/json; charset=utf-8"`, 1)},
		{"extension attribute", "", "", strings.Replace(base, `"specversion":"1.0",`, `"specversion":"1.0","traceparent":"00-abc-def-01","dataschema":"x",`, 1)},
		{"fractional seconds in UTC", "", "", strings.Replace(base, `2026-03-01T00:00:00+08:00`, `2026-02-28T16:00:00.000Z`, 1)},
		{"a day of clock skew", "", "", strings.Replace(base, `2026-03-01T00:00:00+08:00`, `2026-11-23T11:00:00Z`, 1)},
	}
	want := &PropertyRegisteredData{PropertyID: "P1", AddressCode: "230102001001", Acquired: "gift", AreaM2: ptr(52.5)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var key []byte
			if tc.key != "" {
				key = []byte(tc.key)
			}
			ev, err := Decode(Input{Topic: tc.topic, Key: key, Value: []byte(tc.value), Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			if ev.SpecVersion != "1.0" || ev.ID != "e-1" || ev.Source != Housing || ev.Type != PropertyRegistered ||
				string(ev.Subject) != validID || ev.DataContentType != "application/json" || !reflect.DeepEqual(ev.Payload, want) {
				t.Errorf("decoded %+v", ev)
			}
			if ev.Key() != (EventKey{Source: Housing, ID: "e-1"}) {
				t.Errorf("Key() = %+v", ev.Key())
			}
		})
	}
}

// withCheck completes 17 digits with their check character.
func withCheck(first17 string) string { return first17 + string(citizenid.CheckChar(first17)) }

func ptr[T any](v T) *T { return &v }

// TestEncodeFromPayload: an event built in Go, with Payload and no Data,
// encodes to what Decode accepts.
func TestEncodeFromPayload(t *testing.T) {
	in := Event{ID: "si-9", Source: SocialInsurance, Type: ContributionRecorded, Subject: validID,
		Time:    time.Date(2024, 5, 31, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)),
		Payload: &ContributionRecordedData{Month: "2024-05", Region: "230102", Insurances: []string{"pension"}}}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"si-9","source":"social_insurance","type":"social_insurance.contribution_recorded","subject":"230102199001011230","time":"2024-05-31T00:00:00+08:00","datacontenttype":"application/json","data":{"month":"2024-05","region":"230102","insurances":["pension"]}}`
	if string(b) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", b, want)
	}
	out, err := Decode(Input{Topic: Topic(SocialInsurance), Key: []byte(validID), Value: b, Now: fixedNow})
	if err != nil || !reflect.DeepEqual(out.Payload, in.Payload) || !out.Time.Equal(in.Time) {
		t.Errorf("decoded %+v, %v", out, err)
	}
}
