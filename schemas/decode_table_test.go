package schemas

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
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

// TestDecodeJudgesTodayInChina: "not in the future" means not after the
// calendar day in China (UTC+8), whatever zone the hub's clock runs in: a
// death certified, or a newborn registered, early on 2 May in Harbin is
// accepted by a hub for which it is still 1 May in UTC.
func TestDecodeJudgesTodayInChina(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	death := func(date string) string {
		return env("health", "death.certified", validID, `{"date_of_death":"`+date+`","certificate_no":"D1"}`)
	}
	newborn := func(date string) string {
		id := withCheck("230102" + strings.ReplaceAll(date, "-", "") + "123")
		return env("public_security", "hukou.registered", id, `{"name":"张伟","gender":"1","birth_date":"`+date+
			`","ethnicity":"01","address_code":"230102001001","household_id":"H1","reason":"birth"}`)
	}
	morningUTC := time.Date(2026, 5, 1, 23, 30, 0, 0, time.UTC) // 07:30 on 2 May in China
	tests := []struct {
		name   string
		now    time.Time
		value  string
		reason string // "" when accepted
	}{
		{"death today in China, clock in UTC", morningUTC, death("2026-05-02"), ""},
		{"death today in China, clock in CST", morningUTC.In(cst), death("2026-05-02"), ""},
		{"death tomorrow in China", morningUTC, death("2026-05-03"), ReasonInvalidData},
		{"newborn today in China, clock in UTC", morningUTC, newborn("2026-05-02"), ""},
		{"newborn today in China, clock in UTC-5", morningUTC.In(time.FixedZone("", -5*3600)), newborn("2026-05-02"), ""},
		{"newborn tomorrow in China", morningUTC, newborn("2026-05-03"), ReasonInvalidSubject},
		{"death just before midnight in China", time.Date(2026, 5, 2, 15, 59, 0, 0, time.UTC), death("2026-05-03"), ReasonInvalidData},
		{"death just after midnight in China", time.Date(2026, 5, 2, 16, 0, 0, 0, time.UTC), death("2026-05-03"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(Input{Value: []byte(tc.value), Now: tc.now})
			if ReasonOf(err) != tc.reason {
				t.Errorf("Decode = %v, want reason %q", err, tc.reason)
			}
		})
	}
}

// TestDecodeKeyCheck: a Kafka record's key must be the subject, also when
// the record has no key at all (kafka-go gives a null key as nil); input
// from elsewhere (HTTP, files) has no key to check.
func TestDecodeKeyCheck(t *testing.T) {
	value := []byte(env("marriage", "marriage.registered", validID, `{"spouse_id":"11010519491231002X"}`))
	tests := []struct {
		name      string
		key       []byte
		fromKafka bool
		reason    string // "" when accepted
	}{
		{"Kafka record keyed by the subject", []byte(validID), true, ""},
		{"Kafka record without a key", nil, true, ReasonKeyMismatch},
		{"Kafka record with an empty key", []byte{}, true, ReasonKeyMismatch},
		{"Kafka record keyed by another person", []byte("11010519491231002X"), true, ReasonKeyMismatch},
		{"HTTP or file input without a key", nil, false, ""},
		{"input keyed by another person", []byte("11010519491231002X"), false, ReasonKeyMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Topic: Topic(Marriage), Key: tc.key, Value: value, Now: fixedNow, FromKafka: tc.fromKafka}
			_, err := Decode(in)
			if ReasonOf(err) != tc.reason {
				t.Fatalf("Decode = %v, want reason %q", err, tc.reason)
			}
			if re, ok := errors.AsType[*RejectError](err); ok && re.Field != "subject" {
				t.Errorf("Decode = %v, want it to name the subject", err)
			}
			ev, _ := Decode(Input{Value: value, Now: fixedNow})
			ev.Data = nil
			if got := CheckEncoded(&ev, in); ReasonOf(got) != tc.reason {
				t.Errorf("CheckEncoded = %v, want reason %q", got, tc.reason)
			}
		})
	}
}

// TestDecodeRejectsTextThatIsNotUnicode: a value that is not UTF-8, or a
// string escape of half a UTF-16 surrogate pair, is not JSON the hub
// reads (RFC 7493, I-JSON): encoding/json would turn either into U+FFFD,
// so the distinct ids "ps-\xfe" and "ps-\xff" would become one and the
// second event be dropped as a duplicate of the first.
func TestDecodeRejectsTextThatIsNotUnicode(t *testing.T) {
	ok := env("marriage", "marriage.registered", validID, `{"spouse_id":"11010519491231002X"}`)
	withID := func(id string) string { return strings.Replace(ok, `"id":"e-1"`, `"id":"`+id+`"`, 1) }
	tests := []struct {
		name   string
		value  string
		wantID string // the decoded id when accepted
	}{
		{"id with byte FE", withID("ps-\xfe"), ""},
		{"id with byte FF", withID("ps-\xff"), ""},
		{"id with a truncated sequence", withID("ps-\xe9\xbe"), ""},
		{"id with an encoded surrogate", withID("ps-\xed\xa0\x80"), ""},
		{"id with a lone high surrogate escape", withID(`ps-\ud800`), ""},
		{"id with a lone low surrogate escape", withID(`ps-\udc00`), ""},
		{"id with a high surrogate escape before a letter", withID(`ps-\ud800\u0041`), ""},
		{"subject with a lone surrogate escape", strings.Replace(ok, `"subject":"`+validID, `"subject":"\ud800`+validID, 1), ""},
		{"extension with invalid UTF-8", strings.Replace(ok, `"id":"e-1"`, "\"id\":\"e-1\",\"origin\":\"\xff\"", 1), ""},
		{"member name with invalid UTF-8", strings.Replace(ok, `"id":"e-1"`, "\"id\":\"e-1\",\"o\xff\":1", 1), ""},
		{"data with invalid UTF-8", env("tax", "tax.business_registered", validID, "{\"business_id\":\"91350100M000100Y43\",\"region\":\"230102\",\"name\":\"\xff\"}"), ""},
		{"data with a lone surrogate escape", env("tax", "tax.business_registered", validID, `{"business_id":"91350100M000100Y43","region":"230102","name":"\udfff"}`), ""},
		{"id with a surrogate pair escape", withID(`ps-\ud83d\ude00`), "ps-😀"},
		{"id with an escaped backslash before u", withID(`ps-\\ud800`), `ps-\ud800`},
		{"id with U+FFFD itself", withID("ps-\uFFFD"), "ps-\uFFFD"},
		{"id with U+FFFD escaped", withID(`ps-\uFFFD`), "ps-\uFFFD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Value: []byte(tc.value), Now: fixedNow}
			for name, decode := range map[string]func(Input) (Event, error){"Decode": Decode, "decodeStd": decodeStd} {
				ev, err := decode(in)
				if tc.wantID != "" {
					if err != nil || ev.ID != tc.wantID {
						t.Errorf("%s = id %q, %v; want id %q", name, ev.ID, err, tc.wantID)
					}
					continue
				}
				if ReasonOf(err) != ReasonNotJSON {
					t.Errorf("%s = id %q, %v; want not_json", name, ev.ID, err)
				}
			}
		})
	}
}

// TestDecodeRejectsRepeatedMemberNames: a member name that comes twice in
// one object (RFC 7493, I-JSON) is not_json, naming it. encoding/json
// keeps the last, other parsers the first, so a department's tools would
// read another id or reason than the hub applied.
func TestDecodeRejectsRepeatedMemberNames(t *testing.T) {
	ok := env("public_security", "hukou.cancelled", validID, `{"reason":"death"}`)
	with := func(old, new string) string {
		t.Helper()
		if !strings.Contains(ok, old) {
			t.Fatalf("%q not in %s", old, ok)
		}
		return strings.Replace(ok, old, new, 1)
	}
	tests := []struct {
		name      string
		value     string
		wantField string // "" when the value is accepted
	}{
		{"id twice", with(`"id":"e-1"`, `"id":"e-1","id":"e-2"`), "id"},
		{"id null then id", with(`"id":"e-1"`, `"id":null,"id":"e-1"`), "id"},
		{"id escaped the second time", with(`"id":"e-1"`, `"id":"e-1","\u0069d":"e-2"`), "id"},
		{"subject twice", with(`"subject":"`+validID+`"`, `"subject":"`+validID+`","subject":"11010519491231002X"`), "subject"},
		{"data twice", with(`"data":{"reason":"death"}`, `"data":{"reason":"death"},"data":{"reason":"other"}`), "data"},
		{"type twice", with(`"type":"hukou.cancelled"`, `"type":"hukou.cancelled","type":"hukou.cancelled"`), "type"},
		{"extension twice", with(`"id":"e-1"`, `"id":"e-1","origin":"a","origin":"b"`), "origin"},
		{"inside an extension's object", with(`"id":"e-1"`, `"id":"e-1","origin":{"a":1,"b":[{"c":1,"c":2}]}`), "origin.b.c"},
		{"data field twice", with(`{"reason":"death"}`, `{"reason":"other","reason":"death"}`), "data.reason"},
		{"data field escaped the second time", with(`{"reason":"death"}`, `{"reason":"other","r\u0065ason":"death"}`), "data.reason"},
		{"a name holding a citizen ID", with(`"id":"e-1"`, `"id":"e-1","x":{"`+validID+`":1,"`+validID+`":2}`), "x.(a name holding 15 or more digits)"},
		{"same name in two objects", with(`"id":"e-1"`, `"id":"e-1","origin":{"reason":1}`), ""},
		{"same name in an extension and in data", with(`"id":"e-1"`, `"id":"e-1","reason":"x"`), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Value: []byte(tc.value), Now: fixedNow}
			for name, decode := range map[string]func(Input) (Event, error){"Decode": Decode, "decodeStd": decodeStd} {
				ev, err := decode(in)
				if tc.wantField == "" {
					if err != nil {
						t.Errorf("%s: %v; want accepted", name, err)
					}
					continue
				}
				var re *RejectError
				if !errors.As(err, &re) || re.Reason != ReasonNotJSON || re.Field != tc.wantField {
					t.Errorf("%s = id %q, %v; want not_json at %s", name, ev.ID, err, tc.wantField)
				}
			}
		})
	}
}

// TestRepeatedNameCheckIsLinear: the check of repeated names on a deeply
// nested value with long names costs in proportion to its size. It once
// built every object's JSON path and a map per object up front: one event
// of 400 KB took 12 s and allocated 1.4 GB, a stall any producer could
// cause.
func TestRepeatedNameCheckIsLinear(t *testing.T) {
	const depth = 9000
	name := `"` + strings.Repeat("n", 40) + `":`
	value := `{"specversion":"1.0","id":"x","source":"s","type":"t","data":` +
		strings.Repeat("{"+name, depth) + "1" + strings.Repeat("}", depth) + "}"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if rej := checkUniqueNames([]byte(value)); rej != nil {
		t.Fatalf("no name repeats, yet %v", rej)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("checking %d bytes allocated %d MB; want it in proportion to the value", len(value), alloc>>20)
	}
}

// TestDecodeAttributeNamesAreExact: CloudEvents attribute names are
// lower-case and case-sensitive. A member spelled like an attribute in
// another case (or with a character that folds to one, ſ for s) once
// overrode the attribute, as encoding/json matches struct fields without
// regard to case; any member whose name is not a CloudEvents attribute
// name is now rejected, naming it.
func TestDecodeAttributeNamesAreExact(t *testing.T) {
	base := env("public_security", "hukou.cancelled", validID, `{"reason":"death"}`)
	with := func(member string) string {
		return strings.Replace(base, `"specversion":"1.0",`, `"specversion":"1.0",`+member+`,`, 1)
	}
	tests := []struct {
		name     string
		value    string
		accepted bool
		named    string // the member the reject names
	}{
		{"Subject", with(`"Subject":"11010519491231002X"`), false, "Subject"},
		{"SUBJECT", with(`"SUBJECT":"bogus"`), false, "SUBJECT"},
		{"subject with a long s", with(`"ſubject":"11010519491231002X"`), false, "ſubject"},
		{"Data", with(`"Data":{"reason":"emigration"}`), false, "Data"},
		{"Time", with(`"Time":"1999-01-01T00:00:00Z"`), false, "Time"},
		{"Id", with(`"Id":"other-id"`), false, "Id"},
		{"Type", with(`"Type":"hukou.registered"`), false, "Type"},
		{"escaped upper case", with(`"\u0044ata":{}`), false, "Data"},
		{"underscore", with(`"data_base64":"AAAA"`), false, "data_base64"},
		{"hyphen", with(`"trace-parent":"x"`), false, "trace-parent"},
		{"21 characters", with(`"abcdefghijklmnopqrstu":1`), false, "abcdefghijklmnopqrstu"},
		{"empty name", with(`"":1`), false, ""},
		{"first bad name in byte order", with(`"Zeta":1,"Alpha":2`), false, "Alpha"},
		{"extension", with(`"traceparent":"00-abc-def-01"`), true, ""},
		{"extension with digits", with(`"partitionkey2":"x"`), true, ""},
		{"20 characters", with(`"abcdefghijklmnopqrst":{"a":[1]}`), true, ""},
		{"escaped attribute name", with(`"\u0064ataschema":"x"`), true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Topic: Topic(PublicSecurity), Key: []byte(validID), Value: []byte(tc.value), Now: fixedNow}
			for name, decode := range map[string]func(Input) (Event, error){"Decode": Decode, "decodeStd": decodeStd} {
				ev, err := decode(in)
				if tc.accepted {
					want := &HukouCancelledData{Reason: "death"}
					if err != nil || ev.ID != "e-1" || string(ev.Subject) != validID || !reflect.DeepEqual(ev.Payload, want) {
						t.Errorf("%s = %+v, %v; want the event as it is", name, ev, err)
					}
					continue
				}
				re, ok := errors.AsType[*RejectError](err)
				if !ok || re.Reason != ReasonNotCloudEvent || !strings.Contains(re.Detail, fmt.Sprintf("%q", tc.named)) {
					t.Errorf("%s = %v; want not_cloudevent naming %q", name, err, tc.named)
				}
			}
		})
	}
}

// Data field names are case-sensitive too: encoding/json would read
// "Reason" (or "ſpouse_id", by Unicode folding) as the field, where the
// JSON Schemas reject it.
func TestDecodeDataNamesAreExact(t *testing.T) {
	spouse := `"` + validID + `"`
	tests := []struct {
		name  string
		src   Source
		typ   Type
		data  string
		field string // the field the reject names; "" when accepted
	}{
		{"exact", PublicSecurity, HukouCancelled, `{"reason":"death"}`, ""},
		{"escaped exact", PublicSecurity, HukouCancelled, `{"\u0072eason":"death"}`, ""},
		{"upper case", PublicSecurity, HukouCancelled, `{"Reason":"death"}`, "data.Reason"},
		{"upper case beside the real one", PublicSecurity, HukouCancelled, `{"reason":"death","REASON":"other"}`, "data.REASON"},
		{"long s", Marriage, MarriageRegistered, `{"ſpouse_id":` + spouse + `}`, "data.ſpouse_id"},
		{"unknown field", PublicSecurity, HukouCancelled, `{"reason":"death","cause":"x"}`, "data.cause"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Topic: Topic(tc.src), Key: []byte(validID), Value: []byte(env(string(tc.src), string(tc.typ), validID, tc.data)), Now: fixedNow}
			for name, decode := range map[string]func(Input) (Event, error){"Decode": Decode, "decodeStd": decodeStd} {
				_, err := decode(in)
				if tc.field == "" {
					if err != nil {
						t.Errorf("%s: %v; want accepted", name, err)
					}
					continue
				}
				re, ok := errors.AsType[*RejectError](err)
				if !ok || re.Reason != ReasonInvalidData || re.Field != tc.field {
					t.Errorf("%s = %v; want invalid_data naming %s", name, err, tc.field)
				}
			}
		})
	}
}
