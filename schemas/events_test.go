package schemas

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const validID = "230102199001011230"

func env(source, typ, subject, data string) string {
	return `{"specversion":"1.0","id":"e-1","source":"` + source + `","type":"` + typ + `","subject":"` + subject +
		`","time":"2026-03-01T00:00:00+08:00","datacontenttype":"application/json","data":` + data + `}`
}

func TestDecodeRejects(t *testing.T) {
	ended := `{"contract_id":"C1","end":"2026-03-01"}`
	tests := []struct {
		name, topic, key, value string
		reason, field           string
	}{
		{"not JSON", "pop.events.employment", validID, `contract ended`, ReasonNotJSON, ""},
		{"truncated JSON", "pop.events.employment", validID, `{"specversion":"1.0"`, ReasonNotJSON, ""},
		{"JSON array", "pop.events.employment", validID, `[1,2]`, ReasonNotCloudEvent, ""},
		{"missing specversion", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `"specversion":"1.0",`, "", 1), ReasonNotCloudEvent, "specversion"},
		{"wrong specversion", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `"1.0"`, `"0.3"`, 1), ReasonNotCloudEvent, "specversion"},
		{"missing id", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `"id":"e-1",`, "", 1), ReasonNotCloudEvent, "id"},
		{"missing time", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `"time":"2026-03-01T00:00:00+08:00",`, "", 1), ReasonNotCloudEvent, "time"},
		{"bad time", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `2026-03-01T00:00:00+08:00`, `yesterday`, 1), ReasonNotCloudEvent, "time"},
		{"missing data", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `,"data":`+ended, "", 1), ReasonNotCloudEvent, "data"},
		{"XML content", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `application/json`, `application/xml`, 1), ReasonNotCloudEvent, "datacontenttype"},
		{"unknown type", "pop.events.employment", validID, env("employment", "employment.promoted", validID, `{}`), ReasonUnknownType, "type"},
		{"unknown source", "pop.events.employment", validID, env("police", "employment.contract_ended", validID, ended), ReasonSourceMismatch, "source"},
		{"source not the topic's", "pop.events.tax", validID, env("employment", "employment.contract_ended", validID, ended), ReasonSourceMismatch, "source"},
		{"type of another source", "pop.events.tax", validID, env("tax", "employment.contract_ended", validID, ended), ReasonSourceMismatch, "type"},
		{"invalid subject", "pop.events.employment", "230102199001011231", env("employment", "employment.contract_ended", "230102199001011231", ended), ReasonInvalidSubject, "subject"},
		{"key not the subject", "pop.events.employment", "110105194912310029", env("employment", "employment.contract_ended", validID, ended), ReasonKeyMismatch, "subject"},
		{"invalid data", "pop.events.employment", validID, env("employment", "employment.contract_ended", validID, `{"contract_id":"C1"}`), ReasonInvalidData, "data.end"},
		{"NUL in the id", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `"id":"e-1"`, `"id":"e\u00001"`, 1), ReasonNotCloudEvent, "id"},
		{"C1 control (NEL) in the id", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `"id":"e-1"`, `"id":"a\u0085b"`, 1), ReasonNotCloudEvent, "id"},
		{"time in the future", "pop.events.employment", validID, strings.Replace(env("employment", "employment.contract_ended", validID, ended), `2026-03-01T00:00:00+08:00`, `2999-01-01T00:00:00Z`, 1), ReasonNotCloudEvent, "time"},
		{"control character in data", "pop.events.employment", validID, env("employment", "employment.contract_ended", validID, `{"contract_id":"C\u00071","end":"2026-03-01"}`), ReasonInvalidData, "data.contract_id"},
		{"C1 control in data", "pop.events.employment", validID, env("employment", "employment.contract_ended", validID, `{"contract_id":"C\u009f1","end":"2026-03-01"}`), ReasonInvalidData, "data.contract_id"},
		{"data not an object", "pop.events.employment", validID, env("employment", "employment.contract_ended", validID, `"C1"`), ReasonInvalidData, "data"},
		{"end before start", "pop.events.employment", validID, env("employment", "employment.contract_started", validID,
			`{"contract_id":"C1","employer_id":"91350100M000100Y43","employer_name":"x","work_region":"230102","start":"2026-03-01","end":"2026-02-01"}`), ReasonInvalidData, "data.end"},
		{"death in the future", "pop.events.health", validID, env("health", "death.certified", validID, `{"date_of_death":"2999-01-01","certificate_no":"D"}`), ReasonInvalidData, "data.date_of_death"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(Input{Topic: tc.topic, Key: []byte(tc.key), Value: []byte(tc.value)})
			re, ok := err.(*RejectError)
			if !ok || re.Reason != tc.reason || (tc.field != "" && re.Field != tc.field) {
				t.Fatalf("Decode = %v, want %s on %q", err, tc.reason, tc.field)
			}
			if strings.Contains(re.Error(), validID) {
				t.Errorf("error %q contains the citizen ID", re.Error())
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	v := env("employment", "employment.contract_ended", validID, `{"contract_id":"C1","end":"2026-03-01"}`)
	ev, err := Decode(Input{Topic: "pop.events.employment", Key: []byte(validID), Value: []byte(v)})
	if err != nil {
		t.Fatal(err)
	}
	want := &ContractEndedData{ContractID: "C1", End: "2026-03-01"}
	if string(ev.Subject) != validID || ev.Source != Employment || !reflect.DeepEqual(ev.Payload, want) {
		t.Errorf("decoded %+v", ev)
	}
	// Encode and decode again give the same event.
	b, err := Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Decode(Input{Value: b})
	if err != nil || !again.Time.Equal(ev.Time) || !reflect.DeepEqual(again.Payload, ev.Payload) || again.ID != ev.ID {
		t.Errorf("round trip: %+v, %v", again, err)
	}
}

// match is NATS subject matching: * one token, > the rest.
func match(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

func TestSubjectFilters(t *testing.T) {
	harbin := "230102001001" // 道里区, 哈尔滨
	daqing := "230602013004" // 萨尔图区, 大庆
	tests := []struct {
		filter, subject string
		want            bool
	}{
		{ChangedFilter("2301"), ChangedSubject(harbin, SecHukou), true},
		{ChangedFilter("23"), ChangedSubject(daqing, SecMarital), true},
		{ChangedFilter("230102"), ChangedSubject(daqing, SecHukou), false},
		{MigrationOutFilter("2301"), MigrationSubject(harbin, daqing), true},
		{MigrationInFilter("2301"), MigrationSubject(harbin, daqing), false},
		{MigrationInFilter("2306"), MigrationSubject(harbin, daqing), true},
		{DeathFilter("230102"), DeathSubject(harbin), true},
		{DeathFilter("2306"), DeathSubject(harbin), false},
		{StreamSubjects, DeathSubject(""), true},
	}
	for _, tc := range tests {
		if got := match(tc.filter, tc.subject); got != tc.want {
			t.Errorf("%s matches %s = %v, want %v", tc.filter, tc.subject, got, tc.want)
		}
	}
}

func ExampleDecode() {
	value := `{"specversion":"1.0","id":"emp-2026-000123","source":"employment","type":"employment.contract_ended",
		"subject":"230102199001011230","time":"2026-03-01T00:00:00+08:00","data":{"contract_id":"C-77","end":"2026-09-30"}}`
	ev, err := Decode(Input{Topic: "pop.events.employment", Key: []byte("230102199001011230"), Value: []byte(value)})
	fmt.Println(ev.Type, ev.Subject, ev.Payload.(*ContractEndedData).End, err)

	_, err = Decode(Input{Topic: "pop.events.tax", Value: []byte(value)})
	fmt.Println(ReasonOf(err))
	// Output:
	// employment.contract_ended 2301**********1230 2026-09-30 <nil>
	// source_mismatch
}

func ExampleMigrationSubject() {
	fmt.Println(MigrationSubject("230102001001", "230602013004"))
	fmt.Println(MigrationOutFilter("2301"))
	fmt.Println(MigrationInFilter("2301"))
	fmt.Println(DeathSubject(""))
	// Output:
	// pop.migration.23.2301.230102.23.2306.230602
	// pop.migration.23.2301.*.*.*.*
	// pop.migration.*.*.*.23.2301.*
	// pop.death.00.0000.000000
}

// FuzzDecode: Decode gives what the encoding/json reference gives, and
// an accepted event survives Encode and Decode. The seeds are the
// fixtures of TestDecodeSameAsStd and a sample of their mutations.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(env("employment", "employment.contract_ended", validID, `{"contract_id":"C1","end":"2026-03-01"}`)))
	f.Add([]byte(env("marriage", "marriage.registered", validID, `{"spouse_id":"11010519491231002X"}`)))
	f.Add([]byte(`{"specversion":"1.0"}`))
	f.Add([]byte(`not json`))
	hukou := env("public_security", "hukou.cancelled", validID, `{"reason":"death"}`)
	f.Add([]byte(strings.Replace(hukou, `{`, `{"Subject":"11010519491231002X","ſubject":"x",`, 1)))
	f.Add([]byte(strings.Replace(hukou, `"e-1"`, "\"e-\xff\"", 1)))
	f.Add([]byte(strings.Replace(hukou, `"e-1"`, `"e-\ud800\ud83d\ude00"`, 1)))
	f.Add([]byte(strings.Replace(hukou, `{"reason":"death"}`, `{"reason":"other","reason":"death"}`, 1)))
	f.Add([]byte(strings.Replace(hukou, `"id":"e-1"`, `"id":"e-1","x":{"y":1,"y":2},"\u0069d":"e-2"`, 1)))
	corpus, fixtures := diffCorpus(f)
	for _, fx := range fixtures {
		f.Add([]byte(fx.value(plainQuote, "")))
	}
	names := make([]string, 0, len(corpus))
	for name := range corpus {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if i%32 == 0 && len(corpus[name]) < 4096 {
			f.Add([]byte(corpus[name]))
		}
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		in := Input{Value: value, Now: fixedNow}
		sameAsStd(t, "fuzz", in)
		sameAsStd(t, "fuzz from Kafka", Input{Value: value, Now: fixedNow, Topic: "pop.events.marriage", Key: []byte(validID)})
		sameAsStd(t, "fuzz from Kafka without a key", Input{Value: value, Now: fixedNow, Topic: "pop.events.marriage", FromKafka: true})
		ev, err := Decode(in)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		b, err := Encode(ev)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		again, err := Decode(Input{Value: b, Now: fixedNow})
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, b)
		}
		if again.ID != ev.ID || again.Type != ev.Type || again.Subject != ev.Subject || !again.Time.Equal(ev.Time) || !reflect.DeepEqual(again.Payload, ev.Payload) {
			t.Fatalf("round trip changed the event: %+v vs %+v", again, ev)
		}
	})
}

// TestTextLengthInCharacters: limits count characters, not bytes, so a
// long Chinese employer name within 200 characters is accepted.
func TestTextLengthInCharacters(t *testing.T) {
	name := strings.Repeat("龙", 180) // 540 bytes
	data := `{"contract_id":"C1","employer_id":"91350100M000100Y43","employer_name":"` + name + `","work_region":"230102","start":"2026-03-01"}`
	if _, err := Decode(Input{Value: []byte(env("employment", "employment.contract_started", validID, data))}); err != nil {
		t.Errorf("180-character name rejected: %v", err)
	}
	long := strings.Replace(data, name, strings.Repeat("龙", 201), 1)
	if _, err := Decode(Input{Value: []byte(env("employment", "employment.contract_started", validID, long))}); ReasonOf(err) != ReasonInvalidData {
		t.Errorf("201-character name: %v, want invalid_data", err)
	}
}

// TestUnknownAddressCode: a well-formed address or region code the region
// table does not have is rejected with its own reason, naming the field.
func TestUnknownAddressCode(t *testing.T) {
	for _, tc := range []struct{ typ, data, field string }{
		{"hukou.migrated", `{"from_address_code":"230102001001","to_address_code":"230102001999","reason":"employment"}`, "data.to_address_code"},
		{"housing.rental_registered", `{"lease_id":"L1","address_code":"230199001001","start":"2025-01-01"}`, "data.address_code"},
		{"social_insurance.transferred", `{"from_region":"230102","to_region":"239999"}`, "data.to_region"},
		{"employment.contract_started", `{"contract_id":"C1","employer_id":"91350100M000100Y43","employer_name":"x","work_region":"230199","start":"2026-03-01"}`, "data.work_region"},
		{"residence_permit.revoked", `{"city_code":"239900"}`, "data.city_code"},
		{"death.certified", `{"date_of_death":"2025-01-01","certificate_no":"D1","place_code":"239999"}`, "data.place_code"},
		{"death.certified", `{"date_of_death":"2025-01-01","certificate_no":"D1","place_code":"230102001999"}`, "data.place_code"},
	} {
		src := string(SourceOf(Type(tc.typ)))
		_, err := Decode(Input{Value: []byte(env(src, tc.typ, validID, tc.data))})
		re, ok := err.(*RejectError)
		if !ok || re.Reason != ReasonUnknownAddressCode || re.Field != tc.field {
			t.Errorf("%s: %v, want unknown_address_code on %s", tc.typ, err, tc.field)
		}
	}
}
